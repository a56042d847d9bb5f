//! Fault-map profiles: per-cell failure voltage, failure kind and persistence (docs/sram-profiles.md).
//!
//! A cell with failure voltage `v_f` (relative to V_min) fails at every `vdd_rel < v_f`, so the failing sets are
//! nested across voltage (docs/sram-profiles.md#paper-chips). A persistent cell (`p_access = 1`) fails on every access; a transient
//! one with probability `p_access` per access. Only cells with `v_f` above the profile's floor are stored.
use super::SramError;
use serde::Serialize;
use std::io::{BufRead, Read, Write};
use std::path::Path;

/// Directory (relative to the current directory or to the crate root) holding the shipped profiles.
pub const PROFILE_DIR: &str = "sram_profiles";
/// The `format` header value.
pub const FORMAT_NAME: &str = "accelsim-sram-profile";
/// The only format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Header line of the cell table.
pub const CELL_HEADER: &str = "array,row,column,fail_vdd_rel,kind,p_access";
/// Most cells a profile may describe (cell indices are u32).
pub const MAX_CELLS: u64 = u32::MAX as u64;
/// Most failing cells a profile file may list (2^24, about 400 MB in memory; the generator makes at most
/// 2^23 cells in all).
pub const MAX_FAILING_CELLS: u64 = 1 << 24;
/// Most bytes of a profile's header: everything before the cell table header line.
pub const MAX_HEADER_BYTES: u64 = 64 << 10;
/// Longest line of a profile file, in bytes.
pub const MAX_LINE_BYTES: usize = 4096;
/// Bytes the cell table may take per declared failing cell (a written row takes at most about 40).
pub const MAX_ROW_BYTES: u64 = 128;
/// Bytes the cell table may take beyond `MAX_ROW_BYTES · failing_cells` (comments, blank lines).
pub const TABLE_SLACK_BYTES: u64 = 64 << 10;

/// How a failing cell reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Reads as 1 whatever was stored: a 0→1 error when 0 is stored (file code `1`).
    ReadsOne,
    /// Reads as 0: a 1→0 error when 1 is stored (file code `0`).
    ReadsZero,
    /// Reads the inverted value: an error for both stored values (file code `f`).
    Flips,
}

impl FailureKind {
    /// The one-character code used in profile files.
    pub fn code(self) -> &'static str {
        match self {
            FailureKind::ReadsOne => "1",
            FailureKind::ReadsZero => "0",
            FailureKind::Flips => "f",
        }
    }
    fn from_code(s: &str) -> Option<FailureKind> {
        match s {
            "1" => Some(FailureKind::ReadsOne),
            "0" => Some(FailureKind::ReadsZero),
            "f" => Some(FailureKind::Flips),
            _ => None,
        }
    }
}

/// One failing cell of a profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailingCell {
    /// Cell index in the profile: `(array * rows + row) * columns + column`.
    pub cell: u32,
    /// Failure voltage relative to V_min: the cell fails at every `vdd_rel < fail_vdd_rel`.
    pub fail_vdd_rel: f64,
    pub kind: FailureKind,
    /// Probability that an access sees the failure: 1 = persistent, below 1 = transient.
    pub p_access: f64,
}

impl FailingCell {
    /// Persistent (fails on every access) as opposed to transient.
    pub fn is_persistent(&self) -> bool {
        self.p_access >= 1.0
    }
    /// Whether the cell fails at `vdd_rel`.
    pub fn fails_at(&self, vdd_rel: f64) -> bool {
        vdd_rel < self.fail_vdd_rel
    }
}

/// Header fields of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileMeta {
    pub name: String,
    /// How the map was made (free text, e.g. the generator command line or the measurement setup).
    pub source: String,
    /// Generator style, if generated.
    pub style: Option<String>,
    /// Generator seed, if generated.
    pub seed: Option<u64>,
    pub arrays: u32,
    pub rows: u32,
    pub columns: u32,
    /// Cells failing only at or below this `vdd_rel` are not stored; queries below it are refused.
    pub floor_vdd_rel: f64,
}

impl ProfileMeta {
    /// Cells in the profile.
    pub fn total_cells(&self) -> u64 {
        self.arrays as u64 * self.rows as u64 * self.columns as u64
    }
}

/// Statistics of a profile at one voltage (all rates are fractions of cells, not percent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileStats {
    pub vdd_rel: f64,
    /// Expected fraction of cells in error on one access: `Σ p_access / cells` over failing cells.
    pub ber: f64,
    /// Expected fraction of cells turning a stored 0 into 1 (reads-as-1 and flipping cells).
    pub p01: f64,
    /// Expected fraction of cells turning a stored 1 into 0 (reads-as-0 and flipping cells).
    pub p10: f64,
    /// Fraction of cells failing persistently (`p_access = 1`).
    pub persistent: f64,
    /// Variance of the per-column (array, column) counts of failing cells divided by its binomial expectation
    /// `rows·q·(1-q)` (q = failing cells / cells): ≈1 for uniformly scattered faults, ≫1 for column-aligned
    /// ones; `None` (JSON null) when nothing fails.
    pub column_clustering: Option<f64>,
}

/// A fault map: header plus the failing cells sorted by failure voltage, highest first (ties by cell index).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultProfile {
    pub meta: ProfileMeta,
    cells: Vec<FailingCell>,
}

/// A profile error; control characters quoted from the file are escaped so the message stays on one line.
fn perr(origin: &str, line: usize, msg: impl Into<String>) -> SramError {
    SramError::Profile {
        origin: origin.to_string(),
        line,
        msg: crate::limits::printable(&msg.into()),
    }
}

impl FaultProfile {
    /// Builds a profile, validating the header and every cell, and sorting the cells by failure voltage.
    pub fn new(meta: ProfileMeta, mut cells: Vec<FailingCell>) -> Result<FaultProfile, SramError> {
        let o = meta.name.clone();
        validate_meta(&meta, &o)?;
        let total = meta.total_cells();
        for c in &cells {
            validate_cell(c, &meta, total).map_err(|m| perr(&o, 0, m))?;
        }
        cells.sort_by(|a, b| {
            b.fail_vdd_rel
                .total_cmp(&a.fail_vdd_rel)
                .then(a.cell.cmp(&b.cell))
        });
        let mut seen: Vec<u32> = cells.iter().map(|c| c.cell).collect();
        seen.sort_unstable();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return Err(perr(&o, 0, format!("cell index {} listed twice", w[0])));
        }
        Ok(FaultProfile { meta, cells })
    }

    /// All stored failing cells, highest failure voltage first.
    pub fn cells(&self) -> &[FailingCell] {
        &self.cells
    }

    /// Checks that `vdd_rel` is covered by the profile (`floor_vdd_rel ..= 2.0`).
    pub fn check_vdd_rel(&self, vdd_rel: f64) -> Result<(), SramError> {
        if !vdd_rel.is_finite() || vdd_rel < self.meta.floor_vdd_rel || vdd_rel > 2.0 {
            return Err(SramError::VddRel {
                origin: self.meta.name.clone(),
                vdd_rel,
                floor: self.meta.floor_vdd_rel,
            });
        }
        Ok(())
    }

    /// The cells failing at `vdd_rel` (a prefix of [`cells`](Self::cells)): nested, since a lower voltage gives
    /// a longer prefix. Errors below the floor.
    pub fn failing_at(&self, vdd_rel: f64) -> Result<&[FailingCell], SramError> {
        self.check_vdd_rel(vdd_rel)?;
        let n = self.cells.partition_point(|c| c.fails_at(vdd_rel));
        Ok(&self.cells[..n])
    }

    /// The cells that fail at `lower_vdd_rel` but not at `higher_vdd_rel`: add these to a pattern when a sweep
    /// steps down from `higher` to `lower` (work proportional to the new faults).
    pub fn newly_failing(
        &self,
        higher_vdd_rel: f64,
        lower_vdd_rel: f64,
    ) -> Result<&[FailingCell], SramError> {
        let hi = self.failing_at(higher_vdd_rel.max(lower_vdd_rel))?.len();
        let lo = self.failing_at(lower_vdd_rel.min(higher_vdd_rel))?.len();
        Ok(&self.cells[hi..lo])
    }

    /// Statistics at `vdd_rel` (see [`ProfileStats`]).
    pub fn stats_at(&self, vdd_rel: f64) -> Result<ProfileStats, SramError> {
        let failing = self.failing_at(vdd_rel)?;
        let n = self.meta.total_cells() as f64;
        let (mut ber, mut p01, mut p10, mut persistent) = (0.0, 0.0, 0.0, 0usize);
        // Per-column counts over the failing cells only (a dense table of all arrays*columns could take a GiB).
        let columns = self.meta.arrays as u64 * self.meta.columns as u64;
        let (rows, cols) = (self.meta.rows as u64, self.meta.columns as u64);
        let mut column_of: Vec<u64> = Vec::with_capacity(failing.len());
        for c in failing {
            ber += c.p_access;
            match c.kind {
                FailureKind::ReadsOne => p01 += c.p_access,
                FailureKind::ReadsZero => p10 += c.p_access,
                FailureKind::Flips => {
                    p01 += c.p_access;
                    p10 += c.p_access;
                }
            }
            if c.is_persistent() {
                persistent += 1;
            }
            let idx = c.cell as u64;
            let array = idx / (rows * cols);
            column_of.push(array * cols + idx % cols);
        }
        column_of.sort_unstable();
        // Σ k² over the columns' counts k; the mean is failing / columns.
        let sum_sq: u128 = column_of
            .chunk_by(|a, b| a == b)
            .map(|run| (run.len() as u128).pow(2))
            .sum();
        let q = failing.len() as f64 / n;
        let column_clustering = if failing.is_empty() || q >= 1.0 {
            None
        } else {
            // var = Σ (k - mean)² / columns = (columns·Σk² - (Σk)²) / columns², exact in integers.
            let f = failing.len() as u128;
            let var = (columns as u128 * sum_sq - f * f) as f64 / (columns as f64).powi(2);
            Some(var / (rows as f64 * q * (1.0 - q)))
        };
        Ok(ProfileStats {
            vdd_rel,
            ber: ber / n,
            p01: p01 / n,
            p10: p10 / n,
            persistent: persistent as f64 / n,
            column_clustering,
        })
    }

    /// Finds a profile: a bare name is looked up as `sram_profiles/NAME.sramprof.gz` / `NAME.sramprof` (current
    /// directory, then the crate directory), else taken as a path.
    pub fn resolve(name_or_path: &str) -> Result<std::path::PathBuf, SramError> {
        crate::config::resolve_in(PROFILE_DIR, name_or_path, "sramprof.gz")
            .or_else(|_| crate::config::resolve_in(PROFILE_DIR, name_or_path, "sramprof"))
            .map_err(|searched| SramError::NotFound {
                name: name_or_path.to_string(),
                searched,
            })
    }

    /// Reads a profile file (plain text or gzip-compressed, detected by content), streaming: see
    /// [`from_reader`](Self::from_reader).
    pub fn load(path: &Path) -> Result<FaultProfile, SramError> {
        let origin = path.display().to_string();
        let io = |source| SramError::Io {
            path: origin.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        if file.metadata().map_err(io)?.is_dir() {
            return Err(io(std::io::Error::other("is a directory, expected a file")));
        }
        Self::from_reader(std::io::BufReader::with_capacity(1 << 16, file), &origin)
    }

    /// Parses a profile from file bytes; see [`from_reader`](Self::from_reader).
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<FaultProfile, SramError> {
        Self::from_reader(bytes, origin)
    }

    /// Parses a profile (plain text or gzip, detected by the magic bytes); `origin` names it in errors. The text
    /// is read line by line within budgets: [`MAX_HEADER_BYTES`] for the header, then [`MAX_ROW_BYTES`] per
    /// failing cell the header declares (at most [`MAX_FAILING_CELLS`]), so a corrupt header or a gzip bomb is
    /// refused before it is inflated or stored.
    pub fn from_reader<R: BufRead>(mut r: R, origin: &str) -> Result<FaultProfile, SramError> {
        let head = r.fill_buf().map_err(|source| SramError::Io {
            path: origin.to_string(),
            source,
        })?;
        if head.starts_with(&[0x1f, 0x8b]) {
            let gz = std::io::BufReader::new(flate2::bufread::GzDecoder::new(r));
            parse_lines(Lines::new(gz, origin, true), origin)
        } else {
            parse_lines(Lines::new(r, origin, false), origin)
        }
    }

    /// Writes the profile as text (`.gz` paths are gzip-compressed, deterministically: no timestamp).
    pub fn save(&self, path: &Path) -> Result<(), SramError> {
        let io = |source| SramError::Io {
            path: path.display().to_string(),
            source,
        };
        let text = self.to_text();
        let bytes = if path.to_string_lossy().ends_with(".gz") {
            let mut enc = flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::new(), flate2::Compression::default());
            enc.write_all(text.as_bytes()).map_err(io)?;
            enc.finish().map_err(io)?
        } else {
            text.into_bytes()
        };
        crate::fsutil::write_atomic(path, &bytes).map_err(io)
    }

    /// The text form (cells in cell-index order; voltages with 4 decimals).
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let m = &self.meta;
        let mut s = String::with_capacity(64 + self.cells.len() * 24);
        let _ = writeln!(s, "format = {FORMAT_NAME}");
        let _ = writeln!(s, "version = {FORMAT_VERSION}");
        let _ = writeln!(s, "name = {}", m.name);
        let _ = writeln!(s, "source = {}", m.source);
        if let Some(st) = &m.style {
            let _ = writeln!(s, "style = {st}");
        }
        if let Some(seed) = m.seed {
            let _ = writeln!(s, "seed = {seed}");
        }
        let _ = writeln!(s, "arrays = {}", m.arrays);
        let _ = writeln!(s, "rows = {}", m.rows);
        let _ = writeln!(s, "columns = {}", m.columns);
        let _ = writeln!(s, "floor_vdd_rel = {}", m.floor_vdd_rel);
        let _ = writeln!(s, "failing_cells = {}", self.cells.len());
        let _ = writeln!(s, "{CELL_HEADER}");
        let mut order: Vec<&FailingCell> = self.cells.iter().collect();
        order.sort_by_key(|c| c.cell);
        let (rows, cols) = (m.rows as u64, m.columns as u64);
        for c in order {
            let idx = c.cell as u64;
            let _ = writeln!(
                s,
                "{},{},{},{:.4},{},{}",
                idx / (rows * cols),
                (idx / cols) % rows,
                idx % cols,
                c.fail_vdd_rel,
                c.kind.code(),
                c.p_access
            );
        }
        s
    }
}

fn validate_meta(m: &ProfileMeta, o: &str) -> Result<(), SramError> {
    let bad = |key: &str, v: String, allowed: &str| {
        perr(
            o,
            0,
            format!("key `{key}` = {v} is out of range; allowed {allowed}"),
        )
    };
    if m.arrays == 0 || m.arrays > 65536 {
        return Err(bad("arrays", m.arrays.to_string(), "1..=65536"));
    }
    if m.rows == 0 || m.rows > 65536 {
        return Err(bad("rows", m.rows.to_string(), "1..=65536"));
    }
    if m.columns == 0 || m.columns > 4096 {
        return Err(bad("columns", m.columns.to_string(), "1..=4096"));
    }
    if m.total_cells() > MAX_CELLS {
        return Err(bad(
            "arrays*rows*columns",
            m.total_cells().to_string(),
            "at most 2^32-1 cells",
        ));
    }
    if !(m.floor_vdd_rel.is_finite() && m.floor_vdd_rel > 0.0 && m.floor_vdd_rel < 2.0) {
        return Err(bad("floor_vdd_rel", m.floor_vdd_rel.to_string(), "(0, 2)"));
    }
    Ok(())
}

fn validate_cell(c: &FailingCell, m: &ProfileMeta, total: u64) -> Result<(), String> {
    if c.cell as u64 >= total {
        return Err(format!(
            "cell index {} is outside the {total} cells of the profile",
            c.cell
        ));
    }
    if !(c.fail_vdd_rel.is_finite() && c.fail_vdd_rel > m.floor_vdd_rel && c.fail_vdd_rel <= 2.0) {
        return Err(format!(
            "field `fail_vdd_rel` = {} is out of range; allowed ({}, 2] (above floor_vdd_rel)",
            c.fail_vdd_rel, m.floor_vdd_rel
        ));
    }
    if !(c.p_access > 0.0 && c.p_access <= 1.0) {
        return Err(format!(
            "field `p_access` = {} is out of range; allowed (0, 1]",
            c.p_access
        ));
    }
    Ok(())
}

/// Reads a profile's lines one at a time under a byte budget: the header may take at most
/// [`MAX_HEADER_BYTES`], the cell table at most [`MAX_ROW_BYTES`] per declared failing cell (plus
/// [`TABLE_SLACK_BYTES`]), so neither a corrupt header nor a gzip bomb can make the reader inflate or store more
/// than the header claims.
struct Lines<R> {
    r: R,
    origin: String,
    gzip: bool,
    line: usize,
    budget: u64,
    /// What the budget is for, worded for the error.
    budget_what: String,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn new(r: R, origin: &str, gzip: bool) -> Self {
        Lines {
            r,
            origin: origin.to_string(),
            gzip,
            line: 0,
            budget: MAX_HEADER_BYTES,
            budget_what: format!(
                "the header (the lines before `{CELL_HEADER}`) is longer than {} (missing cell table header?)",
                crate::limits::human_bytes(MAX_HEADER_BYTES)
            ),
            buf: Vec::new(),
        }
    }

    /// The next line without its line ending, with its 1-based number; `None` at the end of the file.
    fn next_line(&mut self) -> Result<Option<(usize, &str)>, SramError> {
        self.buf.clear();
        let cap = (MAX_LINE_BYTES as u64 + 1).min(self.budget.saturating_add(1));
        let n = (&mut self.r)
            .take(cap)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| {
                let what = if self.gzip {
                    "corrupt gzip stream"
                } else {
                    "read error"
                };
                perr(&self.origin, self.line + 1, format!("{what}: {e}"))
            })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if n as u64 > self.budget {
            return Err(perr(&self.origin, self.line, self.budget_what.clone()));
        }
        self.budget -= n as u64;
        if n > MAX_LINE_BYTES && !self.buf.ends_with(b"\n") {
            return Err(perr(
                &self.origin,
                self.line,
                format!("line is longer than {MAX_LINE_BYTES} bytes"),
            ));
        }
        let text = std::str::from_utf8(&self.buf)
            .map_err(|_| perr(&self.origin, self.line, "not UTF-8 text"))?;
        Ok(Some((self.line, text.trim_end_matches(['\n', '\r']))))
    }
}

/// Checks a free-text header value: one line of printable text (no control characters).
fn check_text(o: &str, ln: usize, key: &str, v: &str) -> Result<(), SramError> {
    if let Some(c) = v.chars().find(|c| c.is_control()) {
        return Err(perr(
            o,
            ln,
            format!(
                "key `{key}` contains the control character {:?}; allowed printable text",
                c
            ),
        ));
    }
    Ok(())
}

fn parse_lines<R: BufRead>(mut lines: Lines<R>, o: &str) -> Result<FaultProfile, SramError> {
    let mut fields: std::collections::BTreeMap<String, (usize, String)> = Default::default();
    let mut table_line = 0;
    let mut first = true;
    while let Some((ln, line)) = lines.next_line()? {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if first {
            first = false;
            if t.replace(' ', "") != format!("format={FORMAT_NAME}") {
                return Err(perr(o, ln, format!("not an accelsim SRAM profile: the first line must be `format = {FORMAT_NAME}`")));
            }
            continue;
        }
        if t == CELL_HEADER {
            table_line = ln;
            break;
        }
        let Some((k, v)) = t.split_once('=') else {
            return Err(perr(
                o,
                ln,
                format!("expected `key = value` or the cell table header `{CELL_HEADER}`"),
            ));
        };
        let k = k.trim();
        const KEYS: [&str; 10] = [
            "version",
            "name",
            "source",
            "style",
            "seed",
            "arrays",
            "rows",
            "columns",
            "floor_vdd_rel",
            "failing_cells",
        ];
        if !KEYS.contains(&k) {
            return Err(perr(
                o,
                ln,
                format!("unknown key `{k}`; expected one of {}", KEYS.join(", ")),
            ));
        }
        check_text(o, ln, k, v)?;
        if fields
            .insert(k.to_string(), (ln, v.trim().to_string()))
            .is_some()
        {
            return Err(perr(o, ln, format!("key `{k}` given twice")));
        }
    }
    if first {
        return Err(perr(o, 1, "empty file"));
    }
    let get = |k: &str| -> Result<(usize, &str), SramError> {
        fields
            .get(k)
            .map(|(l, v)| (*l, v.as_str()))
            .ok_or_else(|| perr(o, 0, format!("missing required key `{k}`")))
    };
    fn num<T: std::str::FromStr>(
        o: &str,
        (ln, v): (usize, &str),
        k: &str,
        allowed: &str,
    ) -> Result<T, SramError> {
        v.parse().map_err(|_| {
            perr(
                o,
                ln,
                format!("key `{k}` = `{v}` is not valid; allowed {allowed}"),
            )
        })
    }
    let version: u32 = num(o, get("version")?, "version", "1")?;
    if version != FORMAT_VERSION {
        let ln = get("version")?.0;
        return Err(perr(
            o,
            ln,
            format!(
                "unsupported format version {version}; this build reads version {FORMAT_VERSION}"
            ),
        ));
    }
    if table_line == 0 {
        return Err(perr(
            o,
            0,
            format!("missing the cell table header `{CELL_HEADER}` (truncated file?)"),
        ));
    }
    let name = get("name")?;
    if name.1.is_empty() {
        return Err(perr(
            o,
            name.0,
            "key `name` is empty; allowed a non-empty name",
        ));
    }
    let meta = ProfileMeta {
        name: name.1.to_string(),
        source: fields
            .get("source")
            .map(|x| x.1.clone())
            .unwrap_or_default(),
        style: fields.get("style").map(|x| x.1.clone()),
        seed: match fields.get("seed") {
            Some((l, v)) => Some(num(o, (*l, v), "seed", "an unsigned integer")?),
            None => None,
        },
        arrays: num(o, get("arrays")?, "arrays", "1..=65536")?,
        rows: num(o, get("rows")?, "rows", "1..=65536")?,
        columns: num(o, get("columns")?, "columns", "1..=4096")?,
        floor_vdd_rel: num(
            o,
            get("floor_vdd_rel")?,
            "floor_vdd_rel",
            "a number in (0, 2)",
        )?,
    };
    let failing = get("failing_cells")?;
    let expected: u64 = num(
        o,
        failing,
        "failing_cells",
        &format!("0..={MAX_FAILING_CELLS}"),
    )?;
    validate_meta(&meta, o).map_err(|e| match e {
        SramError::Profile { origin, msg, .. } => SramError::Profile {
            origin,
            line: 0,
            msg,
        },
        e => e,
    })?;
    let total = meta.total_cells();
    if expected > total.min(MAX_FAILING_CELLS) {
        return Err(perr(
            o,
            failing.0,
            format!(
                "key `failing_cells` = {expected} is out of range; allowed 0..={} (at most arrays*rows*columns = \
                 {total} and at most {MAX_FAILING_CELLS})",
                total.min(MAX_FAILING_CELLS)
            ),
        ));
    }
    // From here on the file may only hold the rows the header announced.
    lines.budget = expected * MAX_ROW_BYTES + TABLE_SLACK_BYTES;
    lines.budget_what = format!(
        "the cell table is longer than failing_cells = {expected} rows allow (at most {MAX_ROW_BYTES} bytes per row)"
    );
    let mut cells = Vec::with_capacity(expected.min(1 << 16) as usize);
    while let Some((ln, line)) = lines.next_line()? {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if cells.len() as u64 == expected {
            return Err(perr(
                o,
                ln,
                format!("the table has more rows than the header's failing_cells = {expected} (edited file?)"),
            ));
        }
        let f: Vec<&str> = t.split(',').collect();
        if f.len() != 6 {
            return Err(perr(
                o,
                ln,
                format!(
                    "expected 6 comma-separated fields ({CELL_HEADER}), found {}",
                    f.len()
                ),
            ));
        }
        let int = |s: &str, key: &str, hi: u32| -> Result<u32, SramError> {
            match s.trim().parse::<u32>() {
                Ok(v) if v < hi => Ok(v),
                _ => Err(perr(
                    o,
                    ln,
                    format!("field `{key}` = `{s}` is out of range; allowed 0..{hi}"),
                )),
            }
        };
        let a = int(f[0], "array", meta.arrays)?;
        let r = int(f[1], "row", meta.rows)?;
        let c = int(f[2], "column", meta.columns)?;
        let fail_vdd_rel: f64 = f[3].trim().parse().map_err(|_| {
            perr(
                o,
                ln,
                format!(
                    "field `fail_vdd_rel` = `{}` is not a number; allowed ({}, 2]",
                    f[3], meta.floor_vdd_rel
                ),
            )
        })?;
        let kind = FailureKind::from_code(f[4].trim())
            .ok_or_else(|| perr(o, ln, format!("field `kind` = `{}` is not valid; allowed 1 (reads as 1), 0 (reads as 0), f (flips)", f[4])))?;
        let p_access: f64 = f[5].trim().parse().map_err(|_| {
            perr(
                o,
                ln,
                format!(
                    "field `p_access` = `{}` is not a number; allowed (0, 1]",
                    f[5]
                ),
            )
        })?;
        let cell = FailingCell {
            cell: ((a as u64 * meta.rows as u64 + r as u64) * meta.columns as u64 + c as u64)
                as u32,
            fail_vdd_rel,
            kind,
            p_access,
        };
        validate_cell(&cell, &meta, total).map_err(|m| perr(o, ln, m))?;
        cells.push(cell);
    }
    if cells.len() as u64 != expected {
        return Err(perr(
            o,
            0,
            format!("header says failing_cells = {expected} but the table has {} rows (truncated or edited file?)", cells.len()),
        ));
    }
    FaultProfile::new(meta, cells).map_err(|e| match e {
        SramError::Profile { msg, .. } => perr(o, table_line, msg),
        e => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ProfileMeta {
        ProfileMeta {
            name: "t".into(),
            source: "unit test".into(),
            style: None,
            seed: Some(3),
            arrays: 2,
            rows: 4,
            columns: 8,
            floor_vdd_rel: 0.75,
        }
    }

    fn small() -> FaultProfile {
        let cells = vec![
            FailingCell {
                cell: 5,
                fail_vdd_rel: 0.8,
                kind: FailureKind::ReadsOne,
                p_access: 1.0,
            },
            FailingCell {
                cell: 40,
                fail_vdd_rel: 0.9,
                kind: FailureKind::ReadsZero,
                p_access: 0.5,
            },
            FailingCell {
                cell: 63,
                fail_vdd_rel: 0.85,
                kind: FailureKind::Flips,
                p_access: 1.0,
            },
        ];
        FaultProfile::new(meta(), cells).unwrap()
    }

    #[test]
    fn text_round_trip_and_gzip() {
        let p = small();
        let back = FaultProfile::from_bytes(p.to_text().as_bytes(), "x").unwrap();
        assert_eq!(back, p);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.sramprof.gz");
        p.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
        assert_eq!(FaultProfile::load(&path).unwrap(), p);
        p.save(&path).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "gzip output must be byte-for-byte stable"
        );
    }

    #[test]
    fn nesting_and_stats() {
        let p = small();
        assert_eq!(p.failing_at(0.95).unwrap().len(), 0);
        assert_eq!(
            p.failing_at(0.9).unwrap().len(),
            0,
            "fails strictly below its failure voltage"
        );
        assert_eq!(p.failing_at(0.86).unwrap().len(), 1);
        assert_eq!(p.failing_at(0.76).unwrap().len(), 3);
        assert_eq!(p.newly_failing(0.86, 0.76).unwrap().len(), 2);
        assert!(p.failing_at(0.7).is_err());
        let s = p.stats_at(0.76).unwrap();
        let n = 64.0;
        assert!((s.ber - 2.5 / n).abs() < 1e-12);
        assert!((s.p01 - 2.0 / n).abs() < 1e-12);
        assert!((s.p10 - 1.5 / n).abs() < 1e-12);
        assert!((s.persistent - 2.0 / n).abs() < 1e-12);
        assert!(p.stats_at(0.95).unwrap().column_clustering.is_none());
    }

    #[test]
    fn corrupted_files_rejected_with_clear_errors() {
        let good = small().to_text();
        let cases: Vec<(String, &str)> = vec![
            (
                good.replace("format = accelsim-sram-profile", "format = something"),
                "first line",
            ),
            (good.replace("version = 1", "version = 7"), "version 7"),
            (good.replace("rows = 4", "rows = 0"), "rows"),
            (
                good.replace("rows = 4\n", ""),
                "missing required key `rows`",
            ),
            (
                good.replace("name = t", "name = t\ncolour = red"),
                "unknown key `colour`",
            ),
            (
                good.replace("failing_cells = 3", "failing_cells = 4"),
                "truncated",
            ),
            (good.replace(",0.8000,1,1", ",0.7000,1,1"), "fail_vdd_rel"),
            (good.replace(",0.8000,1,1", ",0.8000,z,1"), "kind"),
            (good.replace(",0.8000,1,1", ",0.8000,1,1.5"), "p_access"),
            (
                good.replace(",0.8000,1,1", ",0.8000,1"),
                "6 comma-separated",
            ),
            (good.replace("0,0,5,", "0,9,5,"), "row"),
            (good.replace("0,0,5,", "1,1,0,"), "twice"),
            (good[..good.len() / 2].to_string(), ""),
            (String::new(), "empty"),
        ];
        for (text, needle) in cases {
            let e = FaultProfile::from_bytes(text.as_bytes(), "bad.sramprof")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("bad.sramprof"), "{e}");
            assert!(e.contains(needle), "expected `{needle}` in: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = FaultProfile::from_bytes(&[0x1f, 0x8b, 1, 2, 3], "g.gz")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gzip"), "{e}");
    }

    /// A header claiming far more than the file holds is refused before anything is allocated from it (issue
    /// #11: a 400-byte file claiming 65535 arrays of 256x256 cells used to abort with a 100 GB allocation).
    #[test]
    fn header_claims_are_checked_before_allocating() {
        let head = |arrays: u32, failing: u64| {
            format!(
                "format = accelsim-sram-profile\nversion = 1\nname = big\narrays = {arrays}\nrows = 256\n\
                 columns = 256\nfloor_vdd_rel = 0.75\nfailing_cells = {failing}\n{CELL_HEADER}\n0,0,0,0.9,1,1\n"
            )
        };
        let e = FaultProfile::from_bytes(head(65535, 4_000_000_000).as_bytes(), "big.sramprof")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("failing_cells") && e.contains(&format!("0..={MAX_FAILING_CELLS}")),
            "{e}"
        );
        // Within the limit but more than the file holds: a plain count mismatch, no big allocation.
        let e = FaultProfile::from_bytes(head(65535, MAX_FAILING_CELLS).as_bytes(), "big.sramprof")
            .unwrap_err()
            .to_string();
        assert!(e.contains("but the table has 1 rows"), "{e}");
        // More rows than declared: refused at the first extra row.
        let text = head(2, 1) + "0,0,1,0.9,1,1\n";
        let e = FaultProfile::from_bytes(text.as_bytes(), "x")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x:11:") && e.contains("more rows"), "{e}");
        // failing_cells beyond the cells of the profile.
        let e = FaultProfile::from_bytes(head(1, 65537).as_bytes(), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most arrays*rows*columns = 65536"), "{e}");
    }

    #[test]
    fn gzip_bombs_and_long_lines_stop_at_the_budget() {
        let gz = |text: &[u8]| {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(text).unwrap();
            enc.finish().unwrap()
        };
        // A table of a billion comment lines after a header declaring one cell: stops after ~64 KiB.
        let mut text = small().to_text().into_bytes();
        let one_row = b"# padding padding padding padding padding padding padding padding\n";
        for _ in 0..20_000 {
            text.extend_from_slice(one_row);
        }
        let e = FaultProfile::from_bytes(&gz(&text), "bomb.sramprof.gz")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cell table is longer than failing_cells = 3"),
            "{e}"
        );
        // A header that never ends.
        let mut text = b"format = accelsim-sram-profile\n".to_vec();
        text.extend(std::iter::repeat_n(b"# x\n".as_slice(), 100_000).flatten());
        let e = FaultProfile::from_bytes(&gz(&text), "h.gz")
            .unwrap_err()
            .to_string();
        assert!(e.contains("header"), "{e}");
        // One endless line.
        let mut text = b"format = accelsim-sram-profile\nname = ".to_vec();
        text.extend(std::iter::repeat_n(b'a', 10_000));
        let e = FaultProfile::from_bytes(&text, "l")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("l:2:") && e.contains("longer than 4096 bytes"),
            "{e}"
        );
        // Control characters in free text would break one-line messages and reports.
        let text = small().to_text().replace("name = t", "name = t\u{1b}[31m");
        let e = FaultProfile::from_bytes(text.as_bytes(), "c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("control character"), "{e}");
        let e = FaultProfile::from_bytes(
            small().to_text().replace("name = t", "name =").as_bytes(),
            "c",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`name` is empty"), "{e}");
    }

    proptest::proptest! {
        /// The sparse column-clustering statistic equals the dense per-column reference.
        #[test]
        fn column_clustering_matches_dense_reference(
            arrays in 1u32..4, rows in 1u32..6, columns in 1u32..9,
            picks in proptest::collection::btree_set(0u32..(3 * 5 * 8), 0..40),
        ) {
            let meta = ProfileMeta { arrays, rows, columns, ..meta() };
            let total = meta.total_cells() as u32;
            let cells: Vec<FailingCell> = picks.iter().filter(|&&c| c < total).map(|&cell| FailingCell {
                cell, fail_vdd_rel: 0.9, kind: FailureKind::Flips, p_access: 1.0,
            }).collect();
            let p = FaultProfile::new(meta, cells.clone()).unwrap();
            let got = p.stats_at(0.8).unwrap().column_clustering;
            let ncol = (arrays * columns) as usize;
            let mut per = vec![0f64; ncol];
            for c in &cells {
                let (a, col) = (c.cell / (rows * columns), c.cell % columns);
                per[(a * columns + col) as usize] += 1.0;
            }
            let q = cells.len() as f64 / total as f64;
            let want = if cells.is_empty() || q >= 1.0 { None } else {
                let mean = cells.len() as f64 / ncol as f64;
                let var = per.iter().map(|k| (k - mean).powi(2)).sum::<f64>() / ncol as f64;
                Some(var / (rows as f64 * q * (1.0 - q)))
            };
            match (got, want) {
                (None, None) => {}
                (Some(g), Some(w)) => proptest::prop_assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{g} {w}"),
                other => proptest::prop_assert!(false, "{other:?}"),
            }
        }
    }
}
