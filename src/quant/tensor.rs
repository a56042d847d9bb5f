//! [`QuantizedTensor`]: integer codes plus everything needed to decode them, and the fast fused kernels.

use rayon::prelude::*;

use super::kernel::GroupCodec;
use super::{Codes, Granularity, GroupRange, QuantConfig, QuantError};
use crate::faults::Code;

/// Elements per parallel work item: large enough to amortise scheduling, small enough to balance 2+ threads.
const PAR_CHUNK: usize = 1 << 16;

/// A quantized tensor: its scheme, shape, integer codes and the clean per-group ranges that decode them.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedTensor {
    config: QuantConfig,
    shape: Vec<usize>,
    codes: Codes,
    /// Elements per group (the whole tensor for global/layer; one slice along axis 0 for channel).
    group_len: usize,
    /// One codec per group, holding the group's clean range.
    groups: Vec<GroupCodec>,
}

/// Number of elements of `shape` (1 for a 0-d shape), or `None` on overflow.
fn shape_len(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

/// (number of groups, elements per group) of a tensor.
fn group_layout(cfg: &QuantConfig, shape: &[usize], len: usize) -> (usize, usize) {
    match cfg.granularity {
        Granularity::Channel if !shape.is_empty() => {
            let n = shape[0];
            if n == 0 {
                (0, 0)
            } else {
                (n, len / n)
            }
        }
        _ => (1, len),
    }
}

/// Min, max (of the clipped values) and max |clipped value| of one group; zeros for an empty group.
/// Ties between -0.0 and +0.0 resolve to -0.0 for the min and +0.0 for the max, independent of the order.
fn group_stats(values: &[f32], w_max: Option<f32>) -> (f32, f32, f32) {
    #[inline(always)]
    fn fold(acc: (f32, f32, f32), w: f32, w_max: Option<f32>) -> (f32, f32, f32) {
        let wc = match w_max {
            Some(m) => w.clamp(-m, m),
            None => w,
        };
        let (mut mn, mut mx, mut ma) = acc;
        if wc < mn || (wc == mn && wc.is_sign_negative()) {
            mn = wc;
        }
        if wc > mx || (wc == mx && wc.is_sign_positive()) {
            mx = wc;
        }
        let a = wc.abs();
        if a > ma {
            ma = a;
        }
        (mn, mx, ma)
    }
    fn merge(a: (f32, f32, f32), b: (f32, f32, f32)) -> (f32, f32, f32) {
        let mn = if b.0 < a.0 || (b.0 == a.0 && b.0.is_sign_negative()) {
            b.0
        } else {
            a.0
        };
        let mx = if b.1 > a.1 || (b.1 == a.1 && b.1.is_sign_positive()) {
            b.1
        } else {
            a.1
        };
        (mn, mx, a.2.max(b.2))
    }
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let init = (f32::INFINITY, f32::NEG_INFINITY, 0.0f32);
    if values.len() <= PAR_CHUNK {
        values.iter().fold(init, |acc, &w| fold(acc, w, w_max))
    } else {
        values
            .par_chunks(PAR_CHUNK)
            .map(|c| c.iter().fold(init, |acc, &w| fold(acc, w, w_max)))
            .reduce(|| init, merge)
    }
}

/// Encodes `values` (one group or part of one) into `out` with `codec`.
#[inline]
fn encode_slice<C: Code>(_group: usize, codec: &GroupCodec, values: &[f32], out: &mut [C]) {
    for (o, &w) in out.iter_mut().zip(values) {
        *o = C::from_i64_unchecked(codec.encode(w));
    }
}

/// Runs `f(group_index, group_codec, input_part, output_part)` over all groups, in parallel chunks of at most `PAR_CHUNK`
/// elements that never straddle a group.
fn for_each_group_chunk<T: Send, U: Sync>(
    groups: &[GroupCodec],
    group_len: usize,
    input: &[U],
    output: &mut [T],
    f: impl Fn(usize, &GroupCodec, &[U], &mut [T]) + Sync + Send,
) {
    if group_len == 0 || input.is_empty() {
        return;
    }
    if input.len() <= PAR_CHUNK {
        for (k, ((g, i), o)) in groups
            .iter()
            .zip(input.chunks(group_len))
            .zip(output.chunks_mut(group_len))
            .enumerate()
        {
            f(k, g, i, o);
        }
        return;
    }
    groups
        .par_iter()
        .zip(input.par_chunks(group_len))
        .zip(output.par_chunks_mut(group_len))
        .enumerate()
        .for_each(|(k, ((g, i), o))| {
            if i.len() <= PAR_CHUNK {
                f(k, g, i, o);
            } else {
                i.par_chunks(PAR_CHUNK)
                    .zip(o.par_chunks_mut(PAR_CHUNK))
                    .for_each(|(ii, oo)| f(k, g, ii, oo));
            }
        });
}

/// Quantizes a float32 tensor (C order, `shape`) with `cfg` (docs/quantization.md).
///
/// Errors: invalid `cfg` ([`QuantConfig::validate`]), `values.len()` not matching `shape`, non-finite values.
/// Cost: one pass for the ranges and one fused pass for the codes, both parallel (rayon) and deterministic.
pub fn quantize(
    values: &[f32],
    shape: &[usize],
    cfg: &QuantConfig,
) -> Result<QuantizedTensor, QuantError> {
    cfg.validate()?;
    let expected = shape_len(shape).ok_or_else(|| QuantError::ShapeMismatch {
        shape: shape.to_vec(),
        expected: usize::MAX,
        len: values.len(),
    })?;
    if expected != values.len() {
        return Err(QuantError::ShapeMismatch {
            shape: shape.to_vec(),
            expected,
            len: values.len(),
        });
    }
    if let Some(index) = first_non_finite(values) {
        return Err(QuantError::NonFinite {
            index,
            value: values[index],
        });
    }
    let (n_groups, group_len) = group_layout(cfg, shape, values.len());
    let groups: Vec<GroupCodec> = if cfg.granularity == Granularity::Global {
        vec![GroupCodec::from_stats(cfg, 0.0, 0.0, 0.0); n_groups]
    } else if n_groups > 1 && group_len < PAR_CHUNK {
        values
            .par_chunks(group_len.max(1))
            .take(n_groups)
            .map(|g| {
                let (mn, mx, ma) = group_stats(g, cfg.w_max);
                GroupCodec::from_stats(cfg, mn, mx, ma)
            })
            .collect()
    } else {
        (0..n_groups)
            .map(|i| {
                let g = &values[i * group_len..(i + 1) * group_len];
                let (mn, mx, ma) = group_stats(g, cfg.w_max);
                GroupCodec::from_stats(cfg, mn, mx, ma)
            })
            .collect()
    };
    let codes = encode_all(cfg, &groups, group_len, values);
    Ok(QuantizedTensor {
        config: cfg.clone(),
        shape: shape.to_vec(),
        codes,
        group_len,
        groups,
    })
}

fn encode_all(cfg: &QuantConfig, groups: &[GroupCodec], group_len: usize, values: &[f32]) -> Codes {
    fn run<C: Code + Default>(groups: &[GroupCodec], group_len: usize, values: &[f32]) -> Vec<C> {
        let mut out = vec![C::default(); values.len()];
        for_each_group_chunk(groups, group_len, values, &mut out, encode_slice::<C>);
        out
    }
    match cfg.code_type() {
        "u8" => Codes::U8(run(groups, group_len, values)),
        "i8" => Codes::I8(run(groups, group_len, values)),
        "i16" => Codes::I16(run(groups, group_len, values)),
        _ => Codes::I32(run(groups, group_len, values)),
    }
}

fn first_non_finite(values: &[f32]) -> Option<usize> {
    if values.len() <= PAR_CHUNK {
        values.iter().position(|v| !v.is_finite())
    } else {
        values
            .par_chunks(PAR_CHUNK)
            .enumerate()
            .filter_map(|(c, ch)| {
                ch.iter()
                    .position(|v| !v.is_finite())
                    .map(|i| c * PAR_CHUNK + i)
            })
            .min()
    }
}

impl QuantizedTensor {
    /// Rebuilds a tensor from stored parts: codes and the clean per-group ranges (as returned by
    /// [`ranges`](Self::ranges)). Checks the config, the shape, the code type and the number of ranges.
    pub fn from_parts(
        config: QuantConfig,
        shape: Vec<usize>,
        codes: Codes,
        ranges: &[GroupRange],
    ) -> Result<Self, QuantError> {
        config.validate()?;
        let len = shape_len(&shape).ok_or_else(|| {
            QuantError::InvalidParts(format!("shape {shape:?} overflows the address space"))
        })?;
        if codes.type_name() != config.code_type() || codes.len() != len {
            return Err(QuantError::CodesMismatch {
                expected: config.code_type(),
                expected_len: len,
                got: codes.type_name(),
                got_len: codes.len(),
            });
        }
        let (n_groups, group_len) = group_layout(&config, &shape, len);
        if ranges.len() != n_groups {
            return Err(QuantError::InvalidParts(format!(
                "{} ranges given, the {} granularity of shape {shape:?} needs {n_groups}",
                ranges.len(),
                config.granularity.name()
            )));
        }
        if let Some(r) = ranges
            .iter()
            .find(|r| !(r.lo.is_finite() && r.hi.is_finite() && r.lo <= r.hi))
        {
            return Err(QuantError::InvalidParts(format!(
                "range [{}, {}] is not a finite interval",
                r.lo, r.hi
            )));
        }
        let groups = ranges
            .iter()
            .map(|&r| GroupCodec::from_range(&config, r))
            .collect();
        Ok(QuantizedTensor {
            config,
            shape,
            codes,
            group_len,
            groups,
        })
    }

    pub fn codes(&self) -> &Codes {
        &self.codes
    }

    /// Takes the codes out (e.g. to corrupt them); decode them later with [`dequantize_codes_into`](Self::dequantize_codes_into).
    pub fn into_codes(self) -> Codes {
        self.codes
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn config(&self) -> &QuantConfig {
        &self.config
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Elements per quantization group.
    pub fn group_len(&self) -> usize {
        self.group_len
    }

    /// The clean range of every group (one for global/layer, `shape[0]` for channel).
    pub fn ranges(&self) -> Vec<GroupRange> {
        self.groups.iter().map(|g| g.range()).collect()
    }

    /// The codec of every group (encode/decode single values with the clean ranges).
    pub fn codecs(&self) -> &[GroupCodec] {
        &self.groups
    }

    /// De-quantized values of the clean codes.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.len()];
        self.dequantize_into(&mut out);
        out
    }

    /// De-quantizes the clean codes into `out`.
    ///
    /// # Panics
    /// If `out.len() != self.len()` (a programming error, not user input).
    pub fn dequantize_into(&self, out: &mut [f32]) {
        assert_eq!(out.len(), self.len(), "dequantize_into: output length");
        self.dequantize_codes_into(&self.codes, out)
            .expect("own codes always match");
    }

    /// Decodes other (e.g. corrupted) codes of the same type and length with this tensor's clean ranges.
    pub fn dequantize_codes_into(&self, codes: &Codes, out: &mut [f32]) -> Result<(), QuantError> {
        if codes.type_name() != self.codes.type_name() || codes.len() != self.len() {
            return Err(QuantError::CodesMismatch {
                expected: self.codes.type_name(),
                expected_len: self.len(),
                got: codes.type_name(),
                got_len: codes.len(),
            });
        }
        if out.len() != self.len() {
            return Err(QuantError::OutputLength {
                expected: self.len(),
                got: out.len(),
            });
        }
        match codes {
            Codes::U8(c) => self.decode_bytes(c, out),
            Codes::I8(c) => self.decode_bytes(super::i8_as_bytes(c), out),
            Codes::I16(c) => self.decode_generic(c, out),
            Codes::I32(c) => self.decode_generic(c, out),
        }
        Ok(())
    }

    /// Fast path for one-byte codes: unsigned m ≤ 8, or signed 8-bit codes reinterpreted as bytes. Decodes
    /// through a 256-entry table per group (bit-identical to the scalar decoder).
    pub fn dequantize_u8_into(&self, codes: &[u8], out: &mut [f32]) -> Result<(), QuantError> {
        if self.codes.as_bytes().is_none() {
            return Err(QuantError::NotByteCodes {
                kind: self.codes.type_name(),
            });
        }
        if codes.len() != self.len() {
            return Err(QuantError::CodesMismatch {
                expected: self.codes.type_name(),
                expected_len: self.len(),
                got: "u8",
                got_len: codes.len(),
            });
        }
        if out.len() != self.len() {
            return Err(QuantError::OutputLength {
                expected: self.len(),
                got: out.len(),
            });
        }
        self.decode_bytes(codes, out);
        Ok(())
    }

    fn decode_bytes(&self, codes: &[u8], out: &mut [f32]) {
        if self.group_len >= 1024 {
            // One table per group; each parallel chunk stays within a group.
            let tables: Vec<[f32; 256]> = self.groups.iter().map(|g| g.byte_table()).collect();
            for_each_group_chunk(&self.groups, self.group_len, codes, out, |k, _, c, o| {
                let t = &tables[k];
                for (o, &b) in o.iter_mut().zip(c) {
                    *o = t[b as usize];
                }
            });
        } else {
            let signed = self.config.signed;
            for_each_group_chunk(&self.groups, self.group_len, codes, out, |_, g, c, o| {
                for (o, &b) in o.iter_mut().zip(c) {
                    let v = if signed { b as i8 as i64 } else { b as i64 };
                    *o = g.decode(v);
                }
            });
        }
    }

    fn decode_generic<C: Code>(&self, codes: &[C], out: &mut [f32]) {
        for_each_group_chunk(&self.groups, self.group_len, codes, out, |_, g, c, o| {
            for (o, &v) in o.iter_mut().zip(c) {
                *o = g.decode(v.to_i64());
            }
        });
    }
}
