//! The shared quantization test vectors, `tests/data/quant_vectors.json` (format in docs/quantization.md).
//!
//! The Rust side generates the table deterministically from [`generate`]; a test regenerates it and compares
//! it with the checked-in file, and the PyTorch companion checks its quantizer against the file.

use serde::{Deserialize, Serialize};

use super::{quantize, Granularity, QuantConfig, QuantError, Rounding};

/// Current version of the vector file format.
pub const VERSION: u32 = 1;

/// The whole vector file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorFile {
    pub version: u32,
    pub cases: Vec<VectorCase>,
}

/// One case: a scheme, an input tensor, and the expected codes and de-quantized values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorCase {
    pub name: String,
    pub bits: u8,
    pub granularity: Granularity,
    pub symmetric: bool,
    pub signed: bool,
    pub rounding: bool,
    pub w_max: Option<f32>,
    pub shape: Vec<usize>,
    pub input: Vec<f32>,
    pub codes: Vec<i64>,
    pub dequantized: Vec<f32>,
}

impl VectorCase {
    /// The case's scheme.
    pub fn config(&self) -> QuantConfig {
        QuantConfig {
            bits: self.bits,
            granularity: self.granularity,
            symmetric: self.symmetric,
            signed: self.signed,
            rounding: if self.rounding {
                Rounding::Nearest
            } else {
                Rounding::Truncate
            },
            w_max: self.w_max,
        }
    }
}

/// A tiny deterministic generator (SplitMix64) so the inputs never depend on a library's stream.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Inputs of one case: shape [4, 6]. Row 0: edge values (zeros, ±w_max-ish, beyond ±1, tiny, halves); row 1:
/// a constant row (exercises the channel guard); rows 2-3: pseudo-random values of mixed scale.
fn inputs(seed: u64) -> (Vec<usize>, Vec<f32>) {
    let mut r = SplitMix(seed);
    let mut v = vec![0.0f32, -0.0, 0.1, -0.1, 1.5, -1.25];
    v.extend([0.05f32; 6]);
    for i in 0..12 {
        let scale = if i % 3 == 0 { 0.3 } else { 0.08 };
        v.push(r.unit() * scale);
    }
    (vec![4, 6], v)
}

/// All schemes: unsigned m ∈ {8, 4, 2} and signed m ∈ {8, 16, 32}, × granularity × symmetric × rounding ×
/// w_max ∈ {none, 0.1}.
pub fn generate() -> Result<VectorFile, QuantError> {
    let mut cases = Vec::new();
    let mut seed = 1u64;
    for (signed, bits_list) in [(false, [8u8, 4, 2]), (true, [8u8, 16, 32])] {
        for bits in bits_list {
            for granularity in [
                Granularity::Global,
                Granularity::Layer,
                Granularity::Channel,
            ] {
                for symmetric in [true, false] {
                    for rounding in [true, false] {
                        for w_max in [None, Some(0.1f32)] {
                            let cfg = QuantConfig {
                                bits,
                                granularity,
                                symmetric,
                                signed,
                                rounding: if rounding {
                                    Rounding::Nearest
                                } else {
                                    Rounding::Truncate
                                },
                                w_max,
                            };
                            let (shape, input) = inputs(seed);
                            seed += 1;
                            let q = quantize(&input, &shape, &cfg)?;
                            let name = format!(
                                "{}{}_{}_{}_{}{}",
                                if signed { "s" } else { "u" },
                                bits,
                                granularity.name(),
                                if symmetric { "sym" } else { "asym" },
                                if rounding { "round" } else { "trunc" },
                                match w_max {
                                    Some(w) => format!("_wmax{w}"),
                                    None => String::new(),
                                }
                            );
                            cases.push(VectorCase {
                                name,
                                bits,
                                granularity,
                                symmetric,
                                signed,
                                rounding,
                                w_max,
                                shape,
                                input,
                                codes: q.codes().to_i64_vec(),
                                dequantized: q.dequantize(),
                            });
                        }
                    }
                }
            }
        }
    }
    // The fixed-range ("global") scheme at its extremes: the 2021 reference quantizer clamps inputs and decoded
    // values to ±w_max (not ±(w_max + ε)), so -0.1 and 0.1 decode to exactly ∓0.1 at m = 8 and 4
    // (docs/quantization.md#paper-schemes).
    for (signed, bits) in [(false, 8u8), (false, 4), (true, 8)] {
        let cfg = QuantConfig {
            bits,
            granularity: Granularity::Global,
            symmetric: true,
            signed,
            rounding: Rounding::Nearest,
            w_max: Some(0.1),
        };
        let shape = vec![6];
        let input = vec![-0.1f32, 0.1, -0.3, 0.3, 0.0, 0.05];
        let q = quantize(&input, &shape, &cfg)?;
        cases.push(VectorCase {
            name: format!(
                "{}{bits}_global_sym_round_wmax0.1_extremes",
                if signed { "s" } else { "u" }
            ),
            bits,
            granularity: Granularity::Global,
            symmetric: true,
            signed,
            rounding: true,
            w_max: Some(0.1),
            shape,
            input,
            codes: q.codes().to_i64_vec(),
            dequantized: q.dequantize(),
        });
    }
    // A fully constant tensor for the asymmetric guard (min == max) in both signednesses.
    for (signed, bits) in [(false, 8u8), (true, 8u8)] {
        let cfg = QuantConfig {
            signed,
            ..QuantConfig::rquant(bits)
        };
        let shape = vec![5];
        let input = vec![0.25f32; 5];
        let q = quantize(&input, &shape, &cfg)?;
        cases.push(VectorCase {
            name: format!(
                "{}{bits}_layer_asym_round_constant",
                if signed { "s" } else { "u" }
            ),
            bits,
            granularity: Granularity::Layer,
            symmetric: false,
            signed,
            rounding: true,
            w_max: None,
            shape,
            input,
            codes: q.codes().to_i64_vec(),
            dequantized: q.dequantize(),
        });
    }
    Ok(VectorFile {
        version: VERSION,
        cases,
    })
}

/// The file's text: JSON with one case per line (floats in shortest round-trip form of the f32 value).
pub fn to_json(file: &VectorFile) -> String {
    let mut s = format!("{{\"version\": {}, \"cases\": [\n", file.version);
    for (i, c) in file.cases.iter().enumerate() {
        s.push_str(&serde_json::to_string(c).expect("vector cases always serialize"));
        s.push_str(if i + 1 < file.cases.len() {
            ",\n"
        } else {
            "\n"
        });
    }
    s.push_str("]}\n");
    s
}
