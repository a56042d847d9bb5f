//! Fault sources for an ECC-protected weight SRAM (docs/ecc.md, "Simulation"): the bit errors of a profiled chip
//! or of uniform random errors land on every stored bit (weights, weightless data bits, check bits), each
//! codeword with an error is decoded exactly, and the image the network sees is what the read path delivers.
use std::sync::{Arc, Mutex};

use super::core::{FaultRead, FaultSource};
use super::scenario::{TRANSIENT_SEED_BASE, UNIFORM_SEED_BASE};
use super::SweepError;
use crate::config::DuePolicy;
use crate::ecc::EccLayout;
use crate::faults::{BitErrorRates, NestedSampler};
use crate::model::Model;
use crate::sram::ecc_faults::{
    codeword_errors, decode_into, merge_errors, CodewordError, CodewordId, CodewordMap, EccFaultMap,
};
use crate::sram::{FaultProfile, WeightMapping};

/// Seed tag of the uniform sampler of the non-weight bits (check bits, weightless data bits): chip `s` draws
/// them from seed `splitmix64(100 + s) ⊕ tag`, its weight bits from seed `100 + s` exactly as without ECC.
const EXTRA_SEED_TAG: u64 = 0xECC0_0000_5EED_0002;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// For every element, the code whose de-quantized value is closest to 0.0 (first such code on ties) under its
/// tensor's clean quantization context: what the `zero` DUE policy stores for a zeroed weight.
pub fn zero_codes(model: &Model) -> Result<Vec<u8>, SweepError> {
    let image = model.memory_image();
    let mut out = vec![0u8; image.len()];
    let levels = 1usize << model.bits().min(8);
    for id in 0..model.param_tensors().len() {
        let range = model.image_range(id);
        let q = model.quantized(id);
        let len = range.len();
        let mut best = vec![f32::INFINITY; len];
        let mut codes = vec![0u8; len];
        let mut vals = vec![0f32; len];
        for c in 0..levels {
            codes.fill(c as u8);
            q.dequantize_u8_into(&codes, &mut vals)
                .map_err(|e| SweepError::Eval(e.to_string()))?;
            for (i, v) in vals.iter().enumerate() {
                if v.abs() < best[i] {
                    best[i] = v.abs();
                    out[range.start + i] = c as u8;
                }
            }
        }
    }
    Ok(out)
}

/// A profiled chip under ECC: `maps.len()` weight→memory offsets × `seeds` transient seeds, as without ECC.
pub struct ProfileEccFaults {
    faults: EccFaultMap,
    maps: Vec<CodewordMap>,
    seeds: u32,
    vmin_v: f64,
    due: DuePolicy,
    zero: Arc<Vec<u8>>,
    /// The sweep seed's shift of every seed ([`super::scenario::seed_offset`]).
    seed_offset: u64,
}

impl ProfileEccFaults {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        profile: Arc<FaultProfile>,
        layout: &EccLayout,
        mappings: &[WeightMapping],
        seeds: u32,
        vmin_v: f64,
        due: DuePolicy,
        zero: Arc<Vec<u8>>,
        seed_offset: u64,
    ) -> Result<Self, SweepError> {
        let rows = mappings.first().map_or(0, |m| m.rows());
        let faults = EccFaultMap::new(profile, layout, rows)
            .map_err(|e| SweepError::Input(e.to_string()))?;
        let maps = mappings
            .iter()
            .map(|m| CodewordMap::new(m, layout))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SweepError::Input(e.to_string()))?;
        Ok(ProfileEccFaults {
            faults,
            maps,
            seeds: seeds.max(1),
            vmin_v,
            due,
            zero,
            seed_offset,
        })
    }
}

impl FaultSource for ProfileEccFaults {
    fn faulty_image(
        &self,
        sample: u32,
        vdd_v: f64,
        clean: &[u8],
        out: &mut [u8],
    ) -> Result<u64, SweepError> {
        Ok(self.faulty_read(sample, vdd_v, clean, out)?.flipped_bits)
    }

    fn faulty_read(
        &self,
        sample: u32,
        vdd_v: f64,
        clean: &[u8],
        out: &mut [u8],
    ) -> Result<FaultRead, SweepError> {
        let map = &self.maps[(sample / self.seeds) as usize % self.maps.len()];
        let seed = TRANSIENT_SEED_BASE + (sample % self.seeds) as u64 + self.seed_offset;
        let errors = codeword_errors(&self.faults, map, clean, vdd_v / self.vmin_v, seed)
            .map_err(|e| SweepError::Input(e.to_string()))?;
        out.copy_from_slice(clean);
        let r = decode_into(map, &errors, self.due, &self.zero, out);
        Ok(FaultRead {
            flipped_bits: r.flipped_bits,
            ecc: r.counts,
        })
    }
}

/// Uniform random bit errors under ECC. The weight bits of chip `s` flip exactly as without ECC (the nested
/// sampler of seed `100 + s` over the image); the check bits and weightless data bits of every codeword holding
/// weights flip independently at the same rate, from a second nested sampler over those bits (in codeword order;
/// [`CodewordMap::extra_bits`]).
pub struct UniformEccFaults {
    fixed_p: Option<f64>,
    p_max: f64,
    bits: u8,
    vmin_v: f64,
    map: CodewordMap,
    /// Codewords holding weights and the index of their first non-weight bit (prefix sums).
    extra_ids: Vec<CodewordId>,
    extra_start: Vec<u64>,
    extra_total: u64,
    due: DuePolicy,
    zero: Arc<Vec<u8>>,
    seed_offset: u64,
    current: Mutex<Option<(u32, NestedSampler, NestedSampler)>>,
}

impl UniformEccFaults {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        fixed_p: Option<f64>,
        p_max: f64,
        mapping: &WeightMapping,
        layout: &EccLayout,
        vmin_v: f64,
        due: DuePolicy,
        zero: Arc<Vec<u8>>,
        seed_offset: u64,
    ) -> Result<Self, SweepError> {
        let map =
            CodewordMap::new(mapping, layout).map_err(|e| SweepError::Input(e.to_string()))?;
        let (mut extra_ids, mut extra_start, mut total) = (Vec::new(), Vec::new(), 0u64);
        for id in map.codewords() {
            extra_ids.push(id);
            extra_start.push(total);
            total += map.extra_bits(id) as u64;
        }
        Ok(UniformEccFaults {
            fixed_p,
            p_max,
            bits: mapping.bits(),
            vmin_v,
            map,
            extra_ids,
            extra_start,
            extra_total: total,
            due,
            zero,
            seed_offset,
            current: Mutex::new(None),
        })
    }

    fn p_at(&self, vdd_v: f64) -> f64 {
        self.fixed_p
            .unwrap_or_else(|| crate::sram::measured_ber(vdd_v / self.vmin_v))
            .clamp(0.0, self.p_max)
    }
}

impl FaultSource for UniformEccFaults {
    fn faulty_image(
        &self,
        sample: u32,
        vdd_v: f64,
        clean: &[u8],
        out: &mut [u8],
    ) -> Result<u64, SweepError> {
        Ok(self.faulty_read(sample, vdd_v, clean, out)?.flipped_bits)
    }

    fn faulty_read(
        &self,
        sample: u32,
        vdd_v: f64,
        clean: &[u8],
        out: &mut [u8],
    ) -> Result<FaultRead, SweepError> {
        out.copy_from_slice(clean);
        let p = self.p_at(vdd_v);
        if p <= 0.0 {
            return Ok(FaultRead::default());
        }
        let mut guard = self
            .current
            .lock()
            .map_err(|_| SweepError::Eval("fault sampler lock poisoned".into()))?;
        if guard.as_ref().is_none_or(|(s, _, _)| *s != sample) {
            let seed = UNIFORM_SEED_BASE + sample as u64 + self.seed_offset;
            let input = |e: crate::faults::FaultError| SweepError::Input(e.to_string());
            let data = NestedSampler::new(clean.len() as u64, self.bits, self.p_max, seed)
                .map_err(input)?;
            let extra = NestedSampler::new(
                self.extra_total,
                1,
                self.p_max,
                splitmix64(seed) ^ EXTRA_SEED_TAG,
            )
            .map_err(input)?;
            *guard = Some((sample, data, extra));
        }
        let (_, data, extra) = guard.as_ref().expect("samplers set above");
        let rates = BitErrorRates::uniform(p);
        let eval = |e: crate::faults::FaultError| SweepError::Eval(e.to_string());
        let pattern = data.pattern(clean, rates).map_err(eval)?;
        let mut errors: Vec<CodewordError> = Vec::new();
        for entry in &pattern.entries {
            let mut m = entry.flip;
            while m != 0 {
                let j = m.trailing_zeros();
                m &= m - 1;
                let (id, i) = self.map.locate_weight_bit(entry.index, j as u8);
                errors.push(CodewordError {
                    id,
                    data: 1u64 << i,
                    check: 0,
                });
            }
        }
        let k = self.map.code().k();
        for t in extra.select(rates, |_| false).map_err(eval)? {
            let idx = self.extra_start.partition_point(|&s| s <= t) - 1;
            let id = self.extra_ids[idx];
            let pos = self
                .map
                .extra_bit_position(id, (t - self.extra_start[idx]) as u32);
            errors.push(if pos < k {
                CodewordError {
                    id,
                    data: 1u64 << pos,
                    check: 0,
                }
            } else {
                CodewordError {
                    id,
                    data: 0,
                    check: 1u16 << (pos - k),
                }
            });
        }
        let errors = merge_errors(errors);
        let r = decode_into(&self.map, &errors, self.due, &self.zero, out);
        debug_assert_eq!(r.flipped_bits, pattern.flip_count());
        Ok(FaultRead {
            flipped_bits: r.flipped_bits,
            ecc: r.counts,
        })
    }
}
