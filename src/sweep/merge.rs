//! Sharded sweeps: merging the shards' state files into one report, and their status (docs/scale-out.md).
//!
//! `sweep --shard K/N` writes `sweep-state.shard-K-of-N.json` into the shared output folder. [`merge`] reads
//! every state file there, checks that they all carry the same fingerprint, that it equals the fingerprint of
//! the inputs as they are now, that every file is valid ([`StateFile::validate`]) and that every unit of the
//! sweep is present in **exactly one** file, then builds the rows with the same code as an unsharded sweep
//! ([`build_rows`], [`write_report`]): `sweep.csv`, the plots and `report.md` are byte-identical to the
//! unsharded run's.
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::driver::{build_rows, bundle_files, command_line, write_report, SweepSpec};
use super::lock::FolderLock;
use super::plan::Plan;
use super::state::{list_state_files, StateFile, UnitResult};
use super::unit::{Shard, UnitKey};
use super::SweepError;
use crate::report::markdown::Summary;

/// The state files of one folder, all of one configuration.
#[derive(Debug)]
pub struct ShardStates {
    pub dir: PathBuf,
    /// (shard, file, contents), sorted by (shard count, index).
    pub files: Vec<(Shard, PathBuf, StateFile)>,
}

impl ShardStates {
    /// Reads every state file in `dir`. Errors: no state file, an unreadable file (naming it), or files of
    /// different configurations (naming two of them).
    pub fn read(dir: &Path) -> Result<ShardStates, SweepError> {
        if !dir.is_dir() {
            return Err(SweepError::Input(format!(
                "{}: not a folder (give the --out folder of the sweep's shards)",
                dir.display()
            )));
        }
        let mut files = Vec::new();
        for (shard, path) in list_state_files(dir)? {
            let f = StateFile::read(&path)?;
            files.push((shard, path, f));
        }
        let Some((_, first_path, first)) = files.first() else {
            return Err(SweepError::Input(format!(
                "{}: no sweep state files (sweep-state.json or sweep-state.shard-K-of-N.json); run the sweep or \
                 its shards into this folder first",
                dir.display()
            )));
        };
        if let Some((_, p, f)) = files
            .iter()
            .find(|(_, _, f)| f.fingerprint != first.fingerprint)
        {
            return Err(SweepError::Input(format!(
                "{}: state files of different configurations: {} (fingerprint {}) and {} (fingerprint {}); \
                 remove the stale ones (or rerun their shards with --fresh)",
                dir.display(),
                first_path.display(),
                &first.fingerprint[..16],
                p.display(),
                &f.fingerprint[..16]
            )));
        }
        Ok(ShardStates {
            dir: dir.to_path_buf(),
            files,
        })
    }

    pub fn fingerprint(&self) -> &str {
        &self.files[0].2.fingerprint
    }

    /// The configuration flags the shards were started with (those of the first file).
    pub fn invocation(&self) -> &[String] {
        &self.files[0].2.invocation
    }

    /// The shard counts present (usually one).
    pub fn shard_counts(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.files.iter().map(|(s, _, _)| s.count).collect();
        v.dedup();
        v
    }
}

/// Result of a merge.
#[derive(Debug, Clone)]
pub struct MergeOutcome {
    pub rows: Vec<crate::report::SweepRow>,
    pub summary: Summary,
    pub files: usize,
    pub units: usize,
}

fn describe(k: &UnitKey, plan: &Plan) -> String {
    let m = plan
        .models
        .iter()
        .find(|m| m.key == k.model)
        .map_or("?", |m| m.name.as_str());
    let f = plan
        .faults
        .iter()
        .find(|f| f.key == k.faults)
        .map_or("?", |f| f.name.as_str());
    if k.rails.is_empty() {
        format!("{m} / {f} / sample {}", k.sample)
    } else {
        format!("{m} / {f} / {} / sample {}", k.rails, k.sample)
    }
}

/// Merges the shards of `states` into `sweep.csv`, the plots and `report.md` in their folder (see the module
/// docs). `spec` is the sweep rebuilt from [`ShardStates::invocation`].
pub fn merge(
    spec: &SweepSpec,
    states: &ShardStates,
    tolerance_pts: f64,
) -> Result<MergeOutcome, SweepError> {
    spec.validate()?;
    let dir = &states.dir;
    let plan = Plan::new(spec)?;
    let mut data = spec.data_cache();
    let fp = plan.fingerprint(spec, &mut data)?;
    if fp.expect.fingerprint != states.fingerprint() {
        return Err(SweepError::Input(format!(
            "{}: the shards were computed with configuration fingerprint {} but the inputs now give {} (a model, \
             profile, hardware config or the test data changed since); rerun the shards with --fresh",
            dir.display(),
            &states.fingerprint()[..16],
            &fp.expect.fingerprint[..16]
        )));
    }
    let _lock = FolderLock::acquire(dir, "sweep", &fp.expect.fingerprint, &bundle_files())?;
    let mut found: HashMap<&UnitKey, (&UnitResult, &Path)> = HashMap::new();
    for (_, path, file) in &states.files {
        file.validate(path, &fp.expect)?;
        for u in &file.units {
            if let Some((_, other)) = found.insert(&u.key, (u, path)) {
                return Err(SweepError::Input(format!(
                    "{}: unit {} ({}) is in both {} and {}; every unit must be in exactly one state file \
                     (remove the files of an abandoned sharding)",
                    dir.display(),
                    u.key,
                    describe(&u.key, &plan),
                    other.display(),
                    path.display()
                )));
            }
        }
    }
    let missing: Vec<(usize, &UnitKey)> = fp
        .expect
        .units
        .iter()
        .enumerate()
        .filter(|(_, k)| !found.contains_key(k))
        .collect();
    if !missing.is_empty() {
        let total = fp.expect.units.len();
        let counts = states.shard_counts();
        let mut msg = format!(
            "{}: {} of {total} units missing, e.g. {} ({})",
            dir.display(),
            missing.len(),
            missing[0].1,
            describe(missing[0].1, &plan)
        );
        if let [n] = counts[..] {
            let mut shards: Vec<Shard> = missing
                .iter()
                .map(|(i, _)| Shard::of(*i, total, n))
                .collect();
            shards.dedup();
            let list: Vec<String> = shards.iter().map(|s| s.to_string()).collect();
            let _ = write!(
                msg,
                "; unfinished shards {}: resume each with `{} --out {} --shard K/{n}` (`accelsim sweep status {}` \
                 lists them)",
                list.join(", "),
                command_line(states.invocation()),
                super::driver::shell_quote(&dir.display().to_string()),
                super::driver::shell_quote(&dir.display().to_string())
            );
        }
        return Err(SweepError::Input(msg));
    }
    let rows = build_rows(spec, &plan, |k| found.get(k).map(|(u, _)| *u))?;
    let summary = write_report(
        dir,
        spec,
        &rows,
        &fp.expect.fingerprint,
        states.invocation(),
        tolerance_pts,
    )?;
    Ok(MergeOutcome {
        rows,
        summary,
        files: states.files.len(),
        units: found.len(),
    })
}

/// Progress of one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardStatus {
    pub shard: Shard,
    pub units: usize,
    pub done: usize,
    /// Whether its state file exists.
    pub started: bool,
}

/// Per shard (of every sharding present in the folder) the units done and pending. Needs the inputs (for the
/// unit list) but not the test data.
pub fn status(spec: &SweepSpec, states: &ShardStates) -> Result<Vec<ShardStatus>, SweepError> {
    let plan = Plan::new(spec)?;
    let units = plan.units();
    let mut out = Vec::new();
    for n in states.shard_counts() {
        for index in 0..n {
            let shard = Shard { index, count: n };
            let file = states.files.iter().find(|(s, _, _)| *s == shard);
            let mine: std::collections::HashSet<&UnitKey> =
                units[shard.range(units.len())].iter().collect();
            let done = file.map_or(0, |(_, _, f)| {
                f.units.iter().filter(|u| mine.contains(&u.key)).count()
            });
            out.push(ShardStatus {
                shard,
                units: mine.len(),
                done,
                started: file.is_some(),
            });
        }
    }
    Ok(out)
}
