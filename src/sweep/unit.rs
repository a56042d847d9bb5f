//! Units of work and their keys: what a sweep resumes by, shards by and merges by.
//!
//! A **unit** is one (model, fault source, fault sample) evaluated at every voltage of the grid. Its
//! [`UnitKey`] names the inputs by **content** (a SHA-256 prefix of the resolved files), never by a display name
//! or a path, so two different models that share a manifest `name`, or two profiles that share a file stem, can
//! never share results, and one file listed twice is one unit set (see [`ContentKey`]).
//!
//! Adding a sweep axis (e.g. ECC on/off, the scaled rails) is one new field in [`UnitKey`] plus one loop in
//! [`super::plan::Plan::units`]; everything that resumes, validates, shards and merges works on whole keys.
//!
//! Shards ([`Shard`]): the canonical unit list (models in the order given, then fault sources, then samples) is
//! cut into `N` contiguous blocks of near-equal size, so every shard is a deterministic subset whatever machine
//! computes it, and a shard mostly loads few models. See docs/scale-out.md.
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

use super::SweepError;

/// Hex characters of a content key (64 bits of SHA-256: collisions among a sweep's inputs are out of reach).
pub const KEY_HEX: usize = 16;

/// One unit of work. Ordered (derive) so state files can be written in a canonical order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitKey {
    /// Content key of the model (manifest + tensors file, [`model_key`]; for post-training quantization the
    /// float source's key combined with the width, [`ptq_model_key`]).
    pub model: String,
    /// Bits per stored weight the model is evaluated at (the precision axis, docs/run-and-sweep.md#precision-axis).
    pub bits: u32,
    /// Content key of the fault source ([`super::scenario::FaultSpec::content_key`]).
    pub faults: String,
    /// Protection of the weight SRAM (`sweep --ecc`). Omitted from the state file when `none`, so the units of
    /// an unprotected sweep are written as before the axis existed.
    #[serde(default, skip_serializing_if = "is_unprotected")]
    pub ecc: crate::config::EccScheme,
    /// Scaled rails of the unit (`sweep --rails` given more than once: the rails axis), as the `rails` label
    /// (`weight_sram+activation_sram`). Empty, and omitted from the state file, for the sweep's base rails (the
    /// config's `scaled_rails`, or the one `--rails` set), so the units of a sweep without the axis are written as
    /// before it existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rails: String,
    /// Fault sample: `offset_index * seeds + seed_index` (profiles) or the random chip (uniform errors).
    pub sample: u32,
}

fn is_unprotected(e: &crate::config::EccScheme) -> bool {
    *e == crate::config::EccScheme::None
}

impl std::fmt::Display for UnitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}b/{}/", self.model, self.bits, self.faults)?;
        if !is_unprotected(&self.ecc) {
            write!(f, "{}/", self.ecc)?;
        }
        if !self.rails.is_empty() {
            write!(f, "{}/", self.rails)?;
        }
        write!(f, "{}", self.sample)
    }
}

/// A content key and the input it came from (for messages and for the rows' labels).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentKey {
    pub key: String,
    /// Name in the CSV and report (manifest name; profile file stem).
    pub name: String,
    /// The resolved file (or `uniform`).
    pub origin: String,
}

/// SHA-256 (hex) of `parts`, each prefixed by its length so that concatenations cannot collide.
pub fn sha256_parts(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex(&h.finalize())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read(path: &Path) -> Result<Vec<u8>, SweepError> {
    std::fs::read(path).map_err(|source| SweepError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Content key of a model: the manifest's bytes and the bytes of the tensors file it names (`weights`, relative
/// to the manifest), so a retrained model or an edited copy is a different model whatever its name or path.
pub fn model_key(manifest: &Path, weights_rel: &str) -> Result<String, SweepError> {
    let m = read(manifest)?;
    let weights = manifest
        .parent()
        .unwrap_or(Path::new("."))
        .join(weights_rel);
    let w = read(&weights)?;
    Ok(sha256_parts(&[b"accelsim-model", &m, &w])[..KEY_HEX].to_string())
}

/// Content key of a post-training-quantized model: the float source's [`model_key`] and the width, so every
/// width of one source is a different model (and none equals a trained model's key).
pub fn ptq_model_key(source_key: &str, bits: u32) -> String {
    sha256_parts(&[b"accelsim-ptq", source_key.as_bytes(), &bits.to_le_bytes()])[..KEY_HEX]
        .to_string()
}

/// Content key of a file (fault profiles).
pub fn file_key(tag: &str, path: &Path) -> Result<String, SweepError> {
    let bytes = read(path)?;
    Ok(sha256_parts(&[tag.as_bytes(), &bytes])[..KEY_HEX].to_string())
}

/// Removes repeated inputs (same content key) and refuses two different inputs that share a display name.
/// Returns the indices kept (first occurrence, input order) and one note per dropped repeat. `flag` names the
/// option in messages (`--models`, `--profiles`).
pub fn dedup_by_content(
    flag: &str,
    what: &str,
    items: &[ContentKey],
) -> Result<(Vec<usize>, Vec<String>), SweepError> {
    let mut kept: Vec<usize> = Vec::new();
    let mut notes = Vec::new();
    for (i, it) in items.iter().enumerate() {
        if let Some(&j) = kept.iter().find(|&&j| items[j].key == it.key) {
            notes.push(format!(
                "note: {flag} lists `{}` and `{}`, the same {what} by content; sweeping it once",
                items[j].origin, it.origin
            ));
            continue;
        }
        if let Some(&j) = kept.iter().find(|&&j| items[j].name == it.name) {
            return Err(SweepError::Input(format!(
                "{flag}: `{}` and `{}` are different {what}s with the same name `{}`; the rows could not tell \
                 them apart: rename one (allowed: distinct names)",
                items[j].origin, it.origin, it.name
            )));
        }
        kept.push(i);
    }
    Ok((kept, notes))
}

/// Shard `index` of `count` (0-based, `index < count`): the `index`-th of `count` contiguous blocks of the
/// canonical unit list. The whole sweep is `Shard { index: 0, count: 1 }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// Most shards a sweep may be cut into (Slurm's default MaxArraySize is 1001).
pub const MAX_SHARDS: u32 = 100_000;

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Parses `K/N` (`0 <= K < N <= MAX_SHARDS`).
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || {
            format!(
                "--shard `{s}`: expected K/N with 0 <= K < N <= {MAX_SHARDS} (e.g. 0/4; Slurm: \
                 $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: u32 = k.trim().parse().map_err(|_| bad())?;
        let n: u32 = n.trim().parse().map_err(|_| bad())?;
        if n == 0 || n > MAX_SHARDS || k >= n {
            return Err(bad());
        }
        Ok(Shard { index: k, count: n })
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// The range of canonical unit indices of this shard among `total` units: block `index` of the split
    /// `[i·total/count, (i+1)·total/count)` (sizes differ by at most one).
    pub fn range(&self, total: usize) -> std::ops::Range<usize> {
        let t = total as u128;
        let (i, n) = (self.index as u128, self.count as u128);
        ((i * t / n) as usize)..(((i + 1) * t / n) as usize)
    }

    /// The shard holding unit number `pos` of `total` when the sweep is cut into `count` shards.
    pub fn of(pos: usize, total: usize, count: u32) -> Shard {
        // Largest i with i·total/count <= pos; checked against `range` in the tests.
        let (p, t, n) = (pos as u128, total as u128, count as u128);
        let mut i = ((p * n + n - 1) / t.max(1)).min(n - 1);
        while i > 0 && (i * t / n) > p {
            i -= 1;
        }
        while i + 1 < n && ((i + 1) * t / n) <= p {
            i += 1;
        }
        Shard {
            index: i as u32,
            count,
        }
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn shards_partition_the_units(total in 0usize..500, count in 1u32..64) {
            let mut seen = vec![0u32; total];
            let mut sizes = Vec::new();
            for index in 0..count {
                let s = Shard { index, count };
                let r = s.range(total);
                sizes.push(r.len());
                for p in r {
                    seen[p] += 1;
                    prop_assert_eq!(Shard::of(p, total, count), s);
                }
            }
            prop_assert!(seen.iter().all(|&c| c == 1));
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "{:?}", sizes);
        }
    }

    #[test]
    fn shard_parse() {
        assert_eq!(Shard::parse("0/4").unwrap(), Shard { index: 0, count: 4 });
        assert_eq!(Shard::parse("3/4").unwrap(), Shard { index: 3, count: 4 });
        for bad in ["4/4", "1", "a/b", "0/0", "-1/4", "1/100001", "", "/"] {
            let e = Shard::parse(bad).unwrap_err();
            assert!(
                e.starts_with("--shard") && e.contains("0 <= K < N"),
                "{bad}: {e}"
            );
        }
    }

    fn ck(key: &str, name: &str, origin: &str) -> ContentKey {
        ContentKey {
            key: key.into(),
            name: name.into(),
            origin: origin.into(),
        }
    }

    #[test]
    fn repeats_dedup_and_name_collisions_refuse() {
        let items = [
            ck("a", "m1", "x/m1.toml"),
            ck("b", "m2", "m2.toml"),
            ck("a", "m1", "copy/m1.toml"),
        ];
        let (kept, notes) = dedup_by_content("--models", "model", &items).unwrap();
        assert_eq!(kept, vec![0, 1]);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("x/m1.toml") && notes[0].contains("copy/m1.toml"));
        let clash = [
            ck("a", "chip1", "chip1.sramprof.gz"),
            ck("b", "chip1", "other/chip1.sramprof.gz"),
        ];
        let e = dedup_by_content("--profiles", "fault map", &clash)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--profiles")
                && e.contains("other/chip1.sramprof.gz")
                && e.contains("`chip1.sramprof.gz`"),
            "{e}"
        );
    }

    #[test]
    fn keys_depend_on_every_part() {
        assert_ne!(sha256_parts(&[b"ab", b"c"]), sha256_parts(&[b"a", b"bc"]));
        assert_eq!(sha256_parts(&[b"x"]).len(), 64);
    }
}
