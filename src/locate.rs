//! One rule for the names and paths a user gives for input files (`--hw`, `--model`, `--models`, `--profile`,
//! `--profiles`, `eval --model`, `model show`, `profile stats|show|pattern`, `cycles --topology`). See
//! docs/run-and-sweep.md ("Names and paths").
//!
//! 1. Anything with a path separator (`./x.toml`, `models/x.toml`, `/abs/x.toml`) is a path. An existing file is
//!    taken as it is; a relative path that does not exist here is also tried relative to the source tree the
//!    binary was built from (so `hw_configs/14nm_sram.toml` works from any directory).
//! 2. A bare name (no separator; the extension is optional: `14nm_sram`, `14nm_sram.toml`) is looked up in the
//!    shipped folder of its kind (`hw_configs/`, `models/`, `sram_profiles/`, `hw_configs/topologies/`): first
//!    the folder in the current directory (a checkout), then the one in the source tree.
//! 3. If a bare name is *also* an existing file in the current directory and that file is not the shipped one,
//!    the name is ambiguous: one line lists both and how to pick either (`./NAME` or `DIR/NAME`). Nothing is
//!    chosen silently.
//! 4. A directory where a file is expected is reported as such, not as "not found".
use std::fmt;
use std::path::{Path, PathBuf, MAIN_SEPARATOR};

/// The kinds of input file that have a shipped folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shipped {
    /// `hw_configs/*.toml`.
    HwConfig,
    /// `models/*.toml` (manifests; the weights sit next to them).
    Model,
    /// `sram_profiles/*.sramprof.gz` or `*.sramprof`.
    Profile,
    /// `hw_configs/topologies/*.csv` (SCALE-Sim topology files).
    Topology,
}

impl Shipped {
    /// The shipped folder, relative to the current directory or the source tree.
    pub fn dir(self) -> &'static str {
        match self {
            Shipped::HwConfig => crate::config::HW_CONFIG_DIR,
            Shipped::Model => crate::sweep::scenario::MODEL_DIR,
            Shipped::Profile => crate::sram::profile::PROFILE_DIR,
            Shipped::Topology => "hw_configs/topologies",
        }
    }

    /// Extensions a bare name may omit, tried in this order.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Shipped::HwConfig | Shipped::Model => &["toml"],
            Shipped::Profile => &["sramprof.gz", "sramprof"],
            Shipped::Topology => &["csv"],
        }
    }

    /// What the file is, for messages.
    pub fn what(self) -> &'static str {
        match self {
            Shipped::HwConfig => "hardware config",
            Shipped::Model => "model",
            Shipped::Profile => "SRAM profile",
            Shipped::Topology => "topology",
        }
    }

    /// The expected file, for messages (`a hardware config (.toml) file`).
    pub fn file_kind(self) -> &'static str {
        match self {
            Shipped::HwConfig => "a hardware config (.toml) file",
            Shipped::Model => "a model manifest (.toml) file",
            Shipped::Profile => "an SRAM profile (.sramprof or .sramprof.gz) file",
            Shipped::Topology => "a topology (.csv) file",
        }
    }
}

/// Why a name or path could not be turned into one file. The message is one line; [`LocateError::flag`] makes it
/// name the command-line flag (`--model foo: ...`) instead of the kind (`model \`foo\`: ...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocateError {
    pub kind: Shipped,
    /// The name or path as given.
    pub given: String,
    /// The flag it was given with, if any.
    pub flag: Option<String>,
    pub why: Why,
}

/// The ways a lookup fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// Nothing matched: the candidates tried, and the shipped names (for a bare name).
    NotFound {
        searched: Vec<PathBuf>,
        shipped: Vec<String>,
    },
    /// A bare name that is both a file here and a shipped file.
    Ambiguous { local: PathBuf, shipped: PathBuf },
    /// The only match is a directory.
    IsDir { path: PathBuf },
    /// An empty name.
    Empty,
}

impl LocateError {
    /// The same error, worded for the command-line flag `flag` (`--hw`).
    pub fn flag(mut self, flag: &str) -> Self {
        self.flag = Some(flag.to_string());
        self
    }
}

fn join_paths(v: &[PathBuf]) -> String {
    v.iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for LocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = self.kind.what();
        let subject = match &self.flag {
            Some(flag) => format!("{flag} {}", self.given),
            None => format!("{what} `{}`", self.given),
        };
        match &self.why {
            Why::Empty => write!(
                f,
                "{subject}: empty name; expected {} or a shipped name",
                self.kind.file_kind()
            ),
            Why::IsDir { path } if path.as_os_str() == self.given.as_str() => write!(
                f,
                "{subject} is a directory, expected {}",
                self.kind.file_kind()
            ),
            Why::IsDir { path } => write!(
                f,
                "{subject}: {} is a directory, expected {}",
                path.display(),
                self.kind.file_kind()
            ),
            Why::Ambiguous { local, shipped } => write!(
                f,
                "{subject} is ambiguous: it names both the file {} in the current directory and the shipped {what} \
                 {}; write ./{} for the local file or {}/{} for the shipped one",
                local.display(),
                shipped.display(),
                self.given,
                self.kind.dir(),
                shipped
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            Why::NotFound { searched, shipped } => {
                if is_bare(&self.given) {
                    let exts = self.kind.extensions();
                    let pattern = if candidate_names(self.kind, &self.given).len() == 1 {
                        self.given.clone()
                    } else {
                        format!("{}[.{}]", self.given, exts.join("|."))
                    };
                    let mut dirs: Vec<String> = searched
                        .iter()
                        .skip(1)
                        .filter_map(|p| p.parent().map(|d| format!("{}/", d.display())))
                        .collect();
                    dirs.dedup();
                    write!(
                        f,
                        "{subject} not found: no such file here, and no {pattern} in {}",
                        dirs.join(" or ")
                    )?;
                    if shipped.is_empty() {
                        write!(f, "; no shipped {what}s found in {}/", self.kind.dir())
                    } else {
                        write!(f, "; shipped: {}", shipped.join(", "))
                    }
                } else {
                    write!(f, "{subject} not found (searched {})", join_paths(searched))
                }
            }
        }
    }
}

impl std::error::Error for LocateError {}

/// True when `given` has no path separator, i.e. is a name to look up rather than a path.
pub fn is_bare(given: &str) -> bool {
    !given.contains('/') && !given.contains(MAIN_SEPARATOR) && given != "." && given != ".."
}

/// The source tree the binary was built from (the fallback home of the shipped folders).
fn source_tree() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The shipped folders of `kind` in lookup order: the current directory's, then the source tree's.
pub fn shipped_dirs(kind: Shipped) -> [PathBuf; 2] {
    [PathBuf::from(kind.dir()), source_tree().join(kind.dir())]
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// File names a bare name may stand for: itself when it already ends in one of the kind's extensions, else
/// `NAME.EXT` for each extension and then `NAME` itself.
fn candidate_names(kind: Shipped, name: &str) -> Vec<String> {
    let exts = kind.extensions();
    if exts.iter().any(|e| name.ends_with(&format!(".{e}"))) {
        vec![name.to_string()]
    } else {
        exts.iter()
            .map(|e| format!("{name}.{e}"))
            .chain(std::iter::once(name.to_string()))
            .collect()
    }
}

/// The shipped files of `kind` by name (file name without the extension), sorted and de-duplicated: the
/// current directory's folder if it holds any, else the source tree's.
pub fn list_shipped_names(kind: Shipped) -> Vec<String> {
    let mut names: Vec<String> = list_shipped(kind)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .map(|n| {
            kind.extensions()
                .iter()
                .find_map(|e| n.strip_suffix(&format!(".{e}")).map(str::to_string))
                .unwrap_or(n)
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The shipped files of `kind` (those with one of its extensions): the folder in the current directory if it
/// holds any, else the one in the source tree; sorted.
pub fn list_shipped(kind: Shipped) -> Vec<PathBuf> {
    for dir in shipped_dirs(kind) {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            let mut v: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .filter(|p| {
                    let n = p
                        .file_name()
                        .map(|n| n.to_string_lossy())
                        .unwrap_or_default();
                    kind.extensions()
                        .iter()
                        .any(|e| n.ends_with(&format!(".{e}")))
                })
                .collect();
            if !v.is_empty() {
                v.sort();
                return v;
            }
        }
    }
    Vec::new()
}

/// Turns a name or path into one existing file by the rule in the module docs.
pub fn locate(kind: Shipped, given: &str) -> Result<PathBuf, LocateError> {
    let fail = |why| LocateError {
        kind,
        given: given.to_string(),
        flag: None,
        why,
    };
    if given.trim().is_empty() {
        return Err(fail(Why::Empty));
    }
    let as_path = PathBuf::from(given);
    if !is_bare(given) {
        let mut searched = vec![as_path.clone()];
        if as_path.is_relative() && !as_path.exists() {
            searched.push(source_tree().join(&as_path));
        }
        for c in &searched {
            if c.is_file() {
                return Ok(c.clone());
            }
            if c.is_dir() {
                return Err(fail(Why::IsDir { path: c.clone() }));
            }
        }
        return Err(fail(Why::NotFound {
            searched,
            shipped: Vec::new(),
        }));
    }
    let mut searched = Vec::new();
    let mut shipped_file = None;
    let mut shipped_dir = None;
    'dirs: for dir in shipped_dirs(kind) {
        for n in candidate_names(kind, given) {
            let c = dir.join(n);
            if c.is_file() {
                shipped_file = Some(c);
                break 'dirs;
            }
            if c.is_dir() && shipped_dir.is_none() {
                shipped_dir = Some(c.clone());
            }
            searched.push(c);
        }
    }
    match (as_path.is_file(), shipped_file) {
        (true, Some(s)) if !same_file(&as_path, &s) => Err(fail(Why::Ambiguous {
            local: as_path,
            shipped: s,
        })),
        (true, _) => Ok(as_path),
        (false, Some(s)) => Ok(s),
        (false, None) => {
            if as_path.is_dir() {
                Err(fail(Why::IsDir { path: as_path }))
            } else if let Some(d) = shipped_dir {
                Err(fail(Why::IsDir { path: d }))
            } else {
                searched.insert(0, as_path);
                Err(fail(Why::NotFound {
                    searched,
                    shipped: list_shipped_names(kind),
                }))
            }
        }
    }
}

/// Checks that an input path given with `flag` (e.g. `quantize --input`) is not a directory, so that the reader
/// behind it reports a missing or unreadable file and never "Is a directory (os error 21)". `expected` names the
/// file (`a float32 .npy file`).
pub fn not_a_directory(flag: &str, path: &Path, expected: &str) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!(
            "{flag} {} is a directory, expected {expected}",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_find_shipped_files() {
        let p = locate(Shipped::HwConfig, "14nm_sram").unwrap();
        assert!(p.ends_with("hw_configs/14nm_sram.toml"), "{}", p.display());
        assert_eq!(locate(Shipped::HwConfig, "14nm_sram.toml").unwrap(), p);
        let p = locate(Shipped::Profile, "chip1").unwrap();
        assert!(
            p.ends_with("sram_profiles/chip1.sramprof.gz"),
            "{}",
            p.display()
        );
        let p = locate(Shipped::Topology, "resnet20").unwrap();
        assert!(
            p.ends_with("hw_configs/topologies/resnet20.csv"),
            "{}",
            p.display()
        );
        let p = locate(Shipped::Model, "fmnist-cnn-randbet-8b").unwrap();
        assert!(
            p.ends_with("models/fmnist-cnn-randbet-8b.toml"),
            "{}",
            p.display()
        );
    }

    #[test]
    fn paths_are_taken_as_given() {
        let p = locate(Shipped::HwConfig, "hw_configs/14nm_sram.toml").unwrap();
        assert!(p.is_file());
        let abs = source_tree().join("hw_configs/14nm_sram.toml");
        assert_eq!(
            locate(Shipped::HwConfig, abs.to_str().unwrap()).unwrap(),
            abs
        );
    }

    #[test]
    fn failures_are_one_line_and_name_the_flag() {
        let e = locate(Shipped::Model, "no-such-model")
            .unwrap_err()
            .flag("--model");
        let m = e.to_string();
        assert!(
            m.starts_with(
                "--model no-such-model not found: no such file here, and no no-such-model[.toml] in models/ or "
            ),
            "{m}"
        );
        assert!(
            m.contains("shipped: ") && m.contains("fmnist-cnn-randbet-8b"),
            "{m}"
        );
        let m = locate(Shipped::HwConfig, "hw_configs")
            .unwrap_err()
            .to_string();
        assert!(
            m.contains("is a directory, expected a hardware config (.toml) file"),
            "{m}"
        );
        let m = locate(Shipped::Model, "models/")
            .unwrap_err()
            .flag("--model")
            .to_string();
        assert_eq!(
            m,
            "--model models/ is a directory, expected a model manifest (.toml) file"
        );
        let m = locate(Shipped::Profile, "")
            .unwrap_err()
            .flag("--profile")
            .to_string();
        assert!(m.starts_with("--profile : empty name"), "{m}");
        let m = locate(Shipped::Topology, "nope/x.csv")
            .unwrap_err()
            .to_string();
        assert!(
            m.starts_with("topology `nope/x.csv` not found (searched nope/x.csv"),
            "{m}"
        );
        assert_eq!(m.lines().count(), 1);
    }

    #[test]
    fn candidate_names_add_missing_extensions() {
        assert_eq!(
            candidate_names(Shipped::Profile, "chip1"),
            ["chip1.sramprof.gz", "chip1.sramprof", "chip1"]
        );
        assert_eq!(
            candidate_names(Shipped::Profile, "chip1.sramprof"),
            ["chip1.sramprof"]
        );
        assert_eq!(
            candidate_names(Shipped::HwConfig, "a.b"),
            ["a.b.toml", "a.b"]
        );
    }

    #[test]
    fn shipped_listing_strips_extensions() {
        let n = list_shipped_names(Shipped::Profile);
        assert!(
            n.contains(&"chip1".to_string()) && n.contains(&"chip2".to_string()),
            "{n:?}"
        );
        assert!(list_shipped_names(Shipped::HwConfig).contains(&"14nm_sram".to_string()));
    }
}
