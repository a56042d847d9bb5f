//! Layers as the systolic array sees them: a convolution or a GEMM, reduced to the GEMM
//! `M × K` (inputs, im2col) times `K × N` (weights) = `M × N` (outputs).
//!
//! * `M` = output pixels = batch · E · F (E, F = output height/width),
//! * `N` = filters (output channels),
//! * `K` = C · R · S (the reduction: input channels × filter height × filter width).
//!
//! A linear layer `in → out` on a batch `B` is the GEMM `M = B, N = out, K = in` (a 1×1 convolution on a 1×1 map).
//! The SCALE-Sim GEMM form `Layer, M, N, K,` uses the same letters with the same meaning (SCALE-Sim turns it into
//! an `M × K` IFMAP with a `1 × K` filter and `N` filters, i.e. exactly this GEMM).
//!
//! Output size: `E = floor((H_padded − R) / stride) + 1` (PyTorch). SCALE-Sim v2 uses
//! `ceil((H_padded − R + stride) / stride)`, which gives one more output row when `stride` does not divide
//! `H_padded − R`; [`OfmapRounding::ScaleSim`] reproduces that for cross-checks (see docs/systolic.md).
use serde::Serialize;

/// Largest accepted value of any single layer dimension.
pub const MAX_DIM: u64 = 1 << 24;

/// Largest accepted MAC count (and input size) of one layer, 2^36 ≈ 6.9·10^10: keeps every derived count in
/// `u64` (network totals saturate instead of wrapping).
pub const MAX_MACS: u64 = 1 << 36;

/// Errors building a [`Layer`]: a dimension out of range. Messages name the layer and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayerError {
    #[error("layer `{layer}`: {field} = {value} is out of range (allowed {min}..={max})")]
    OutOfRange {
        layer: String,
        field: &'static str,
        value: u64,
        min: u64,
        max: u64,
    },
    #[error(
        "layer `{layer}`: filter {filter} is larger than the padded input {input} along the {axis}"
    )]
    FilterLargerThanInput {
        layer: String,
        axis: &'static str,
        filter: u64,
        input: u64,
    },
    #[error("layer `{layer}`: too large (more than 2^36 MACs or input elements)")]
    TooLarge { layer: String },
}

/// How the output height/width of a convolution is rounded when the stride does not divide evenly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OfmapRounding {
    /// `floor((H − R) / stride) + 1`, as PyTorch and every framework compute it.
    #[default]
    Floor,
    /// `ceil((H − R + stride) / stride)`, SCALE-Sim v2's `topo_calc_hyperparams` (for cross-checks only).
    ScaleSim,
}

/// Shape of one layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerShape {
    /// 2-D convolution (groups = 1). `ifmap_h`/`ifmap_w` already include the zero padding, as in SCALE-Sim.
    Conv {
        batch: u64,
        ifmap_h: u64,
        ifmap_w: u64,
        filter_h: u64,
        filter_w: u64,
        channels: u64,
        num_filters: u64,
        stride_h: u64,
        stride_w: u64,
        rounding: OfmapRounding,
        /// Zero padding per side included in `ifmap_h`/`ifmap_w` (0 when unknown, e.g. from a SCALE-Sim
        /// topology). The padding is produced on chip, so DRAM carries only the unpadded map.
        pad_h: u64,
        pad_w: u64,
    },
    /// Plain GEMM: `M × K` inputs times `K × N` weights.
    Gemm { m: u64, n: u64, k: u64 },
}

/// The GEMM a layer maps to (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GemmDims {
    /// Output pixels (rows of the input operand).
    pub m: u64,
    /// Filters (columns of the weight operand).
    pub n: u64,
    /// Reduction length C·R·S.
    pub k: u64,
}

/// One layer of a topology, validated at construction: every dimension is in `1..=MAX_DIM` and `M·N·K` fits in
/// `u64`, so the simulator can use plain integer arithmetic afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layer {
    pub name: String,
    pub shape: LayerShape,
    /// Where the layer's first weight sits in the weight memory, in weight slots (docs/hw-config.md); `None`:
    /// right after the previous layer's weights ([`crate::systolic::simulate_network`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_base_slot: Option<u64>,
}

fn check(layer: &str, field: &'static str, value: u64) -> Result<u64, LayerError> {
    if (1..=MAX_DIM).contains(&value) {
        Ok(value)
    } else {
        Err(LayerError::OutOfRange {
            layer: layer.to_string(),
            field,
            value,
            min: 1,
            max: MAX_DIM,
        })
    }
}

impl Layer {
    /// A convolution in SCALE-Sim's terms: padded IFMAP `ifmap_h × ifmap_w`, `channels` input channels,
    /// `num_filters` filters of `filter_h × filter_w`, strides, batch 1.
    #[allow(clippy::too_many_arguments)]
    pub fn scalesim_conv(
        name: &str,
        ifmap_h: u64,
        ifmap_w: u64,
        filter_h: u64,
        filter_w: u64,
        channels: u64,
        num_filters: u64,
        stride_h: u64,
        stride_w: u64,
        rounding: OfmapRounding,
    ) -> Result<Layer, LayerError> {
        Self::conv_padded(
            name,
            1,
            ifmap_h,
            ifmap_w,
            filter_h,
            filter_w,
            channels,
            num_filters,
            stride_h,
            stride_w,
            rounding,
        )
    }

    /// A PyTorch-style `Conv2d` on an `N × C × H × W` input: `K` filters of `R × S`, square stride and padding
    /// (zero padding on both sides, so the padded input is `(H + 2·padding) × (W + 2·padding)`).
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d(
        name: &str,
        batch: u64,
        channels: u64,
        height: u64,
        width: u64,
        num_filters: u64,
        filter_h: u64,
        filter_w: u64,
        stride: u64,
        padding: u64,
    ) -> Result<Layer, LayerError> {
        let pad = padding.min(MAX_DIM);
        Self::conv_padded(
            name,
            batch,
            height.saturating_add(2 * pad),
            width.saturating_add(2 * pad),
            filter_h,
            filter_w,
            channels,
            num_filters,
            stride,
            stride,
            OfmapRounding::Floor,
        )?
        .with_zero_padding(pad, pad)
    }

    /// The same convolution, recording that `pad_h`/`pad_w` zeros per side are part of its (padded) IFMAP size.
    /// Only the DRAM traffic changes: DRAM holds the unpadded map, the zeros are produced on chip. Errors when
    /// the padding leaves no input (`2·pad ≥` the padded size) or is given for a GEMM.
    pub fn with_zero_padding(self, pad_h: u64, pad_w: u64) -> Result<Layer, LayerError> {
        let (h, w) = match self.shape {
            LayerShape::Conv {
                ifmap_h, ifmap_w, ..
            } => (ifmap_h, ifmap_w),
            LayerShape::Gemm { .. } if pad_h == 0 && pad_w == 0 => return Ok(self),
            LayerShape::Gemm { .. } => (0, 0),
        };
        for (field, pad, size) in [("padding height", pad_h, h), ("padding width", pad_w, w)] {
            if pad.saturating_mul(2) >= size {
                return Err(LayerError::OutOfRange {
                    layer: self.name.clone(),
                    field,
                    value: pad,
                    min: 0,
                    max: size.saturating_sub(1) / 2,
                });
            }
        }
        let mut layer = self;
        if let LayerShape::Conv {
            pad_h: ph,
            pad_w: pw,
            ..
        } = &mut layer.shape
        {
            *ph = pad_h;
            *pw = pad_w;
        }
        Ok(layer)
    }

    /// A linear (fully connected) layer `in_features → out_features` on `batch` examples: GEMM
    /// `M = batch, N = out_features, K = in_features`.
    pub fn linear(
        name: &str,
        batch: u64,
        in_features: u64,
        out_features: u64,
    ) -> Result<Layer, LayerError> {
        Self::gemm(name, batch, out_features, in_features)
    }

    /// A GEMM `M × K` times `K × N` (SCALE-Sim's `Layer, M, N, K,` row).
    pub fn gemm(name: &str, m: u64, n: u64, k: u64) -> Result<Layer, LayerError> {
        let layer = Layer {
            name: name.to_string(),
            weight_base_slot: None,
            shape: LayerShape::Gemm {
                m: check(name, "M", m)?,
                n: check(name, "N", n)?,
                k: check(name, "K", k)?,
            },
        };
        layer.check_products()
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_padded(
        name: &str,
        batch: u64,
        ifmap_h: u64,
        ifmap_w: u64,
        filter_h: u64,
        filter_w: u64,
        channels: u64,
        num_filters: u64,
        stride_h: u64,
        stride_w: u64,
        rounding: OfmapRounding,
    ) -> Result<Layer, LayerError> {
        let shape = LayerShape::Conv {
            batch: check(name, "batch", batch)?,
            ifmap_h: check(name, "IFMAP height", ifmap_h)?,
            ifmap_w: check(name, "IFMAP width", ifmap_w)?,
            filter_h: check(name, "filter height", filter_h)?,
            filter_w: check(name, "filter width", filter_w)?,
            channels: check(name, "channels", channels)?,
            num_filters: check(name, "num filters", num_filters)?,
            stride_h: check(name, "stride height", stride_h)?,
            stride_w: check(name, "stride width", stride_w)?,
            rounding,
            pad_h: 0,
            pad_w: 0,
        };
        for (axis, filter, input) in [("height", filter_h, ifmap_h), ("width", filter_w, ifmap_w)] {
            if filter > input {
                return Err(LayerError::FilterLargerThanInput {
                    layer: name.to_string(),
                    axis,
                    filter,
                    input,
                });
            }
        }
        Layer {
            name: name.to_string(),
            shape,
            weight_base_slot: None,
        }
        .check_products()
    }

    /// The same layer with its weights placed at `slot` (see [`Layer::weight_base_slot`]).
    pub fn with_weight_base_slot(self, slot: u64) -> Layer {
        Layer {
            weight_base_slot: Some(slot),
            ..self
        }
    }

    fn check_products(self) -> Result<Layer, LayerError> {
        // Recompute the products in u128 so that no intermediate can overflow, then bound them so that every
        // count the simulator derives (at most ~2^19 · MACs, see docs/systolic.md) fits in u64.
        let (e, f) = self.ofmap_hw();
        let (m, n, k, ifmap) = match self.shape {
            LayerShape::Conv {
                batch,
                ifmap_h,
                ifmap_w,
                filter_h,
                filter_w,
                channels,
                num_filters,
                ..
            } => (
                batch as u128 * e as u128 * f as u128,
                num_filters as u128,
                channels as u128 * filter_h as u128 * filter_w as u128,
                batch as u128 * ifmap_h as u128 * ifmap_w as u128 * channels as u128,
            ),
            LayerShape::Gemm { m, n, k } => {
                (m as u128, n as u128, k as u128, m as u128 * k as u128)
            }
        };
        if m * n * k <= MAX_MACS as u128 && ifmap <= MAX_MACS as u128 {
            Ok(self)
        } else {
            Err(LayerError::TooLarge { layer: self.name })
        }
    }

    /// Output height and width (1 × 1 for a GEMM, whose `M` rows are counted as the height).
    pub fn ofmap_hw(&self) -> (u64, u64) {
        match self.shape {
            LayerShape::Conv {
                ifmap_h,
                ifmap_w,
                filter_h,
                filter_w,
                stride_h,
                stride_w,
                rounding,
                ..
            } => {
                let out = |i: u64, f: u64, s: u64| match rounding {
                    OfmapRounding::Floor => (i - f) / s + 1,
                    OfmapRounding::ScaleSim => (i - f + s).div_ceil(s),
                };
                (
                    out(ifmap_h, filter_h, stride_h),
                    out(ifmap_w, filter_w, stride_w),
                )
            }
            LayerShape::Gemm { m, .. } => (m, 1),
        }
    }

    /// The GEMM this layer maps to.
    pub fn gemm_dims(&self) -> GemmDims {
        match self.shape {
            LayerShape::Conv {
                batch,
                filter_h,
                filter_w,
                channels,
                num_filters,
                ..
            } => {
                let (e, f) = self.ofmap_hw();
                GemmDims {
                    m: batch * e * f,
                    n: num_filters,
                    k: channels * filter_h * filter_w,
                }
            }
            LayerShape::Gemm { m, n, k } => GemmDims { m, n, k },
        }
    }

    /// Multiply-accumulates: `M · N · K`.
    pub fn macs(&self) -> u64 {
        let d = self.gemm_dims();
        d.m * d.n * d.k
    }

    /// Weights stored for this layer: `K · N` (biases are not part of the GEMM).
    pub fn weight_count(&self) -> u64 {
        let d = self.gemm_dims();
        d.k * d.n
    }

    /// Elements of the input feature map as stored (padded `batch · H · W · C`; `M · K` for a GEMM).
    pub fn ifmap_elems(&self) -> u64 {
        match self.shape {
            LayerShape::Conv {
                batch,
                ifmap_h,
                ifmap_w,
                channels,
                ..
            } => batch * ifmap_h * ifmap_w * channels,
            LayerShape::Gemm { m, k, .. } => m * k,
        }
    }

    /// Elements of the input feature map in DRAM: the unpadded `batch · (H − 2·pad_h) · (W − 2·pad_w) · C`
    /// (`M · K` for a GEMM). The zero padding is produced on chip (docs/energy.md, "DRAM traffic").
    pub fn dram_ifmap_elems(&self) -> u64 {
        match self.shape {
            LayerShape::Conv {
                batch,
                ifmap_h,
                ifmap_w,
                channels,
                pad_h,
                pad_w,
                ..
            } => batch * (ifmap_h - 2 * pad_h) * (ifmap_w - 2 * pad_w) * channels,
            LayerShape::Gemm { m, k, .. } => m * k,
        }
    }

    /// Elements of the output feature map: `M · N`.
    pub fn ofmap_elems(&self) -> u64 {
        let d = self.gemm_dims();
        d.m * d.n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_maps_to_gemm() {
        // ResNet-20 first layer: 3 -> 16, 3x3, pad 1 on 32x32.
        let l = Layer::conv2d("conv1", 1, 3, 32, 32, 16, 3, 3, 1, 1).unwrap();
        assert_eq!(l.ofmap_hw(), (32, 32));
        assert_eq!(
            l.gemm_dims(),
            GemmDims {
                m: 1024,
                n: 16,
                k: 27
            }
        );
        assert_eq!(l.macs(), 1024 * 16 * 27);
        assert_eq!(l.ifmap_elems(), 34 * 34 * 3);
    }

    #[test]
    fn stride_two_rounding_differs_from_scalesim() {
        // padded 34, filter 3, stride 2: PyTorch gives 16, SCALE-Sim's ceil((34-3+2)/2) gives 17.
        let l = Layer::conv2d("c", 1, 16, 32, 32, 32, 3, 3, 2, 1).unwrap();
        assert_eq!(l.ofmap_hw(), (16, 16));
        let s =
            Layer::scalesim_conv("c", 34, 34, 3, 3, 16, 32, 2, 2, OfmapRounding::ScaleSim).unwrap();
        assert_eq!(s.ofmap_hw(), (17, 17));
    }

    #[test]
    fn linear_is_gemm() {
        let l = Layer::linear("fc", 1, 1568, 64).unwrap();
        assert_eq!(
            l.gemm_dims(),
            GemmDims {
                m: 1,
                n: 64,
                k: 1568
            }
        );
        assert_eq!(l.weight_count(), 1568 * 64);
    }

    #[test]
    fn rejects_bad_dims() {
        assert!(matches!(
            Layer::gemm("g", 0, 1, 1),
            Err(LayerError::OutOfRange { field: "M", .. })
        ));
        assert!(matches!(
            Layer::scalesim_conv("c", 2, 2, 3, 3, 1, 1, 1, 1, OfmapRounding::Floor),
            Err(LayerError::FilterLargerThanInput { .. })
        ));
        let e = Layer::conv2d("c", 1, 1, 4, 4, 1, 3, 3, 0, 0).unwrap_err();
        assert!(e.to_string().contains("stride height = 0"), "{e}");
    }
}
