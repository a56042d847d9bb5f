//! Property-based fuzzing of every file reader (issue #11): random byte mutations, insertions, deletions and
//! truncations of the real shipped files (hardware configs, model manifests and tensors, SRAM profiles, topology
//! CSVs, Fashion-MNIST IDX files) and of small files written by the code itself (fault patterns, `.npy`, CIFAR).
//!
//! Every case must end in `Ok` or in an error of one line naming the file: no panic, no abort, no huge
//! allocation (a counting allocator fails any case that allocates more than [`MAX_ALLOCATION`] at once), and
//! every `Ok` value must satisfy the invariants its type promises (a mutation may well produce a valid file).
//!
//! Cases per parser: `ACCELSIM_FUZZ_CASES` (default 40, a few hundred in all; `make fuzz` runs 5000 each). The
//! heavy readers (whole models, gzip profiles) run a quarter of that.
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use accelsim::config::HwConfig;
use accelsim::data::{self, DatasetKind};
use accelsim::faults::FaultPattern;
use accelsim::model::manifest::{parse_manifest, MAX_W_MAX, MEAN_RANGE, STD_RANGE};
use accelsim::model::Model;
use accelsim::npy::{self, NpyArray, NpyData};
use accelsim::sram::{self, FaultProfile, WeightMapping};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

// ---------------------------------------------------------------------------------------------------------------
// Allocation watch

/// Largest single allocation any case may make: the inputs are at most a few MB, so anything near this comes from
/// trusting a header.
const MAX_ALLOCATION: usize = 512 << 20;

struct Watch;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Watch = Watch;

fn check_allocations() -> Result<(), TestCaseError> {
    let largest = LARGEST.load(Ordering::Relaxed);
    prop_assert!(
        largest <= MAX_ALLOCATION,
        "a single allocation of {largest} bytes (limit {MAX_ALLOCATION})"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Mutations

/// Cases per parser: `ACCELSIM_FUZZ_CASES`, default 40.
fn cases() -> u32 {
    std::env::var("ACCELSIM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases: cases.max(1),
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Byte strings that tend to break parsers: special floats, integer limits, structure characters, control
/// characters, format magic.
const TOKENS: &[&[u8]] = &[
    b"nan",
    b"inf",
    b"-inf",
    b"-1",
    b"0",
    b"1e308",
    b"-1e-320",
    b"18446744073709551615",
    b"4294967296",
    b"65535",
    b"9223372036854775807",
    b"\"",
    b"[",
    b"]",
    b"{",
    b"}",
    b"=",
    b",",
    b"\n",
    b"\r",
    b"\x1b[31m",
    b"#",
    b"[[layers]]",
    b"true",
    b"0.0",
    b"\x1f\x8b",
    b"\x93NUMPY",
    b"\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x00\x00\x00\x00",
    b"\x00\x00\x08\x03",
];

#[derive(Debug, Clone)]
enum Edit {
    /// Replace one byte.
    Set(u32, u8),
    /// Flip one bit.
    Flip(u32, u8),
    /// Insert a token.
    Token(u32, usize),
    /// Overwrite with a token.
    OverwriteToken(u32, usize),
    /// Delete up to n bytes.
    Delete(u32, u16),
    /// Repeat a range of up to n bytes in place.
    Duplicate(u32, u16),
    /// Cut the file here.
    Truncate(u32),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let pos = any::<u32>();
    let edit = prop_oneof![
        3 => (pos, any::<u8>()).prop_map(|(p, b)| Edit::Set(p, b)),
        2 => (pos, 0u8..8).prop_map(|(p, b)| Edit::Flip(p, b)),
        2 => (pos, 0..TOKENS.len()).prop_map(|(p, t)| Edit::Token(p, t)),
        2 => (pos, 0..TOKENS.len()).prop_map(|(p, t)| Edit::OverwriteToken(p, t)),
        1 => (pos, 1u16..64).prop_map(|(p, n)| Edit::Delete(p, n)),
        1 => (pos, 1u16..64).prop_map(|(p, n)| Edit::Duplicate(p, n)),
        1 => pos.prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..5)
}

/// Applies the edits. A position with its top bit set falls into the first `hot` bytes (the header of a binary
/// format, where a single byte changes the meaning of everything after it); otherwise anywhere.
fn mutate(input: &[u8], edits: &[Edit], hot: usize) -> Vec<u8> {
    let mut b = input.to_vec();
    for e in edits {
        let at = |p: u32, len: usize| -> usize {
            if len == 0 {
                return 0;
            }
            let span = if p & 0x8000_0000 != 0 {
                hot.clamp(1, len)
            } else {
                len
            };
            (p & 0x7fff_ffff) as usize % span
        };
        let len = b.len();
        match *e {
            Edit::Set(p, v) if len > 0 => {
                let i = at(p, len);
                b[i] = v;
            }
            Edit::Flip(p, bit) if len > 0 => {
                let i = at(p, len);
                b[i] ^= 1 << bit;
            }
            Edit::Token(p, t) => {
                let i = at(p, len + 1).min(len);
                b.splice(i..i, TOKENS[t].iter().copied());
            }
            Edit::OverwriteToken(p, t) if len > 0 => {
                let i = at(p, len);
                let end = (i + TOKENS[t].len()).min(len);
                b.splice(i..end, TOKENS[t].iter().copied());
            }
            Edit::Delete(p, n) if len > 0 => {
                let i = at(p, len);
                let end = (i + n as usize).min(len);
                b.drain(i..end);
            }
            Edit::Duplicate(p, n) if len > 0 => {
                let i = at(p, len);
                let end = (i + n as usize).min(len);
                let copy = b[i..end].to_vec();
                b.splice(end..end, copy);
            }
            Edit::Truncate(p) => {
                let i = at(p, len + 1);
                b.truncate(i);
            }
            _ => {}
        }
    }
    b
}

thread_local! {
    /// Errors seen by this test's thread, for the summary line (`--nocapture`).
    static ERRORS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// One line, not empty, naming the file.
fn check_error(msg: &str, file: &str) -> Result<(), TestCaseError> {
    ERRORS.with(|c| c.set(c.get() + 1));
    prop_assert!(!msg.trim().is_empty(), "empty error message");
    prop_assert!(
        !msg.contains('\n') && !msg.contains('\r'),
        "multi-line error: {msg:?}"
    );
    prop_assert!(msg.contains(file), "error does not name {file}: {msg}");
    Ok(())
}

/// Runs `case` on mutations of each input; `hot` is the header length of each input.
fn fuzz(
    inputs: &[(Vec<u8>, usize)],
    cases: u32,
    case: impl Fn(&[u8]) -> Result<(), TestCaseError>,
) {
    assert!(!inputs.is_empty());
    let mut r = runner(cases);
    let strategy = (0..inputs.len(), edits());
    let runs = std::cell::Cell::new(0u64);
    ERRORS.with(|c| c.set(0));
    r.run(&strategy, |(which, e)| {
        let (input, hot) = &inputs[which];
        let bytes = mutate(input, &e, *hot);
        runs.set(runs.get() + 1);
        case(&bytes)?;
        check_allocations()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let errors = ERRORS.with(|c| c.get());
    eprintln!(
        "{} cases, {errors} clean errors; largest allocation so far {} bytes",
        runs.get(),
        LARGEST.load(Ordering::Relaxed)
    );
}

// ---------------------------------------------------------------------------------------------------------------
// The real files

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn files_in(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {ext} files in {dir}");
    v
}

fn whole(p: &Path) -> (Vec<u8>, usize) {
    let b = std::fs::read(p).unwrap();
    let n = b.len();
    (b, n)
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// Length of a safetensors file's header (8-byte length + JSON), the part worth mutating most.
fn safetensors_header_len(b: &[u8]) -> usize {
    8 + u64::from_le_bytes(b[..8].try_into().unwrap()) as usize
}

// ---------------------------------------------------------------------------------------------------------------
// Text configs

#[test]
fn hw_configs_survive_mutation() {
    let inputs: Vec<_> = files_in("hw_configs", ".toml")
        .iter()
        .map(|p| whole(p))
        .collect();
    fuzz(&inputs, cases(), |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match HwConfig::from_toml_str(&text, "fuzz-hw.toml") {
            Err(e) => check_error(&e.to_string(), "fuzz-hw.toml"),
            Ok(c) => {
                prop_assert!(c.validate().is_ok());
                let v = &c.voltage;
                for x in [v.vmin_v, v.nominal_v, v.logic_v] {
                    prop_assert!(x.is_finite() && x > 0.0, "{x}");
                }
                prop_assert!(v.nominal_v >= v.vmin_v);
                let e = &c.energy;
                for x in [
                    e.mac_pj,
                    e.weight_sram_read_pj,
                    e.weight_sram_write_pj,
                    e.weight_sram_leakage_pw_per_bit,
                    e.leakage_v_per_efold,
                    e.act_sram_pj_per_byte,
                    e.dram_pj_per_bit,
                ] {
                    prop_assert!(x.is_finite() && x >= 0.0, "{x}");
                }
                prop_assert!(e.weight_sram_table.iter().flatten().all(|x| x.is_finite()));
                prop_assert!(c.systolic.clock_mhz.is_finite() && c.systolic.clock_mhz > 0.0);
                prop_assert!(c.systolic.dram_bytes_per_cycle.is_finite());
                prop_assert!(c.weight_sram.total_bits() <= u32::MAX as u64);
                Ok(())
            }
        }
    });
}

#[test]
fn model_manifests_survive_mutation() {
    let mut inputs: Vec<_> = files_in("models", ".toml")
        .iter()
        .map(|p| whole(p))
        .collect();
    inputs.push(whole(&root().join("tests/data/golden/golden_cnn.toml")));
    let path = Path::new("fuzz-model.toml");
    fuzz(&inputs, cases(), |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match parse_manifest(&text, path) {
            Err(e) => check_error(&e.to_string(), "fuzz-model.toml"),
            Ok(m) => {
                let i = &m.input;
                prop_assert!(i
                    .mean
                    .iter()
                    .all(|x| x.is_finite() && (MEAN_RANGE.0..=MEAN_RANGE.1).contains(x)));
                prop_assert!(i
                    .std
                    .iter()
                    .all(|x| x.is_finite() && (STD_RANGE.0..=STD_RANGE.1).contains(x)));
                prop_assert!(i.shape.iter().all(|&d| d > 0));
                if let Some(w) = m.quantization.w_max {
                    prop_assert!(w.is_finite() && w > 0.0 && w <= MAX_W_MAX);
                }
                let t = &m.training;
                prop_assert!((0.0..=1.0).contains(&t.p_train));
                if let Some(e) = t.clean_error_pct {
                    prop_assert!(e.is_finite() && (0.0..=100.0).contains(&e));
                }
                prop_assert!(!m.layers.is_empty());
                Ok(())
            }
        }
    });
}

#[test]
fn topologies_survive_mutation() {
    use accelsim::systolic::topology::parse_topology;
    let inputs: Vec<_> = files_in("hw_configs/topologies", ".csv")
        .iter()
        .map(|p| whole(p))
        .collect();
    fuzz(&inputs, cases(), |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match parse_topology(&text, "fuzz-topo.csv", Default::default()) {
            Err(e) => check_error(&e.to_string(), "fuzz-topo.csv"),
            Ok(layers) => {
                for l in &layers {
                    // Derived quantities are defined (no overflow, no division by zero) for every accepted layer.
                    let _ = (l.macs(), l.weight_count(), l.ifmap_elems(), l.ofmap_elems());
                }
                Ok(())
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------------------------
// Model tensors (manifest + safetensors on disk)

#[test]
fn model_tensors_survive_mutation() {
    let dir = tempfile::tempdir().unwrap();
    let models = [
        ("tests/data/golden/golden_cnn.toml", 3),
        ("models/fmnist-cnn-randbet-8b.toml", 1),
    ];
    let mut inputs = Vec::new();
    for (manifest, _) in models {
        let m = parse_manifest(
            &String::from_utf8(read(manifest)).unwrap(),
            Path::new(manifest),
        )
        .unwrap();
        let weights = Path::new(manifest).parent().unwrap().join(&m.weights);
        let bytes = read(weights.to_str().unwrap());
        let hot = safetensors_header_len(&bytes) + 64;
        inputs.push(((manifest, m.weights.clone()), bytes, hot));
    }
    let mut r = runner(cases().div_ceil(4));
    let strategy = (prop::sample::select(vec![0usize, 0, 0, 1]), edits());
    r.run(&strategy, |(which, e)| {
        let ((manifest, weights), bytes, hot) = &inputs[which];
        let case = dir.path().join(format!("case{which}"));
        std::fs::create_dir_all(&case).unwrap();
        std::fs::write(case.join("m.toml"), read(manifest)).unwrap();
        std::fs::write(case.join(weights), mutate(bytes, &e, *hot)).unwrap();
        match Model::load(case.join("m.toml")) {
            Err(err) => check_error(&err.to_string(), weights)?,
            Ok(m) => {
                prop_assert!(m.num_params() > 0);
                for id in 0..m.param_tensors().len() {
                    prop_assert!(m.float_param(id).iter().all(|v| v.is_finite()));
                }
                prop_assert_eq!(m.memory_image().len(), m.num_params() * m.bytes_per_value());
            }
        }
        check_allocations()
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

// ---------------------------------------------------------------------------------------------------------------
// SRAM profiles

fn check_profile(p: &FaultProfile) -> Result<(), TestCaseError> {
    let m = &p.meta;
    let total = m.total_cells();
    prop_assert!(total > 0 && total <= sram::profile::MAX_CELLS);
    prop_assert!(m.floor_vdd_rel.is_finite() && m.floor_vdd_rel > 0.0 && m.floor_vdd_rel < 2.0);
    prop_assert!(p.cells().len() as u64 <= sram::profile::MAX_FAILING_CELLS);
    for w in p.cells().windows(2) {
        prop_assert!(w[0].fail_vdd_rel >= w[1].fail_vdd_rel, "not sorted");
    }
    let mut seen = std::collections::HashSet::new();
    for c in p.cells() {
        prop_assert!((c.cell as u64) < total);
        prop_assert!(
            c.fail_vdd_rel.is_finite() && c.fail_vdd_rel > m.floor_vdd_rel && c.fail_vdd_rel <= 2.0
        );
        prop_assert!(c.p_access > 0.0 && c.p_access <= 1.0);
        prop_assert!(seen.insert(c.cell), "cell {} twice", c.cell);
    }
    // Queries on an accepted profile work at its floor.
    let s = p.stats_at(m.floor_vdd_rel).unwrap();
    prop_assert!(s.ber.is_finite() && (0.0..=1.0).contains(&s.ber));
    Ok(())
}

/// The shipped chip1 profile's text cut to its header and first rows (with `failing_cells` adjusted): a real
/// profile small enough to parse thousands of times.
fn profile_prefix(rows: usize) -> Vec<u8> {
    let text = String::from_utf8(gunzip(&read("sram_profiles/chip1.sramprof.gz"))).unwrap();
    let (head, table) = text
        .split_once("array,row,column,fail_vdd_rel,kind,p_access\n")
        .unwrap();
    let body: Vec<&str> = table.lines().take(rows).collect();
    let head: String = head
        .lines()
        .map(|l| {
            if l.starts_with("failing_cells") {
                format!("failing_cells = {rows}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let out = format!(
        "{head}array,row,column,fail_vdd_rel,kind,p_access\n{}\n",
        body.join("\n")
    );
    FaultProfile::from_bytes(out.as_bytes(), "prefix").expect("the prefix is a valid profile");
    out.into_bytes()
}

#[test]
fn profile_text_survives_mutation() {
    let text = profile_prefix(300);
    let hot = text.windows(7).position(|w| w == b"array,r").unwrap() + 64;
    let inputs = vec![(text.clone(), hot), (gzip(&text), 64)];
    fuzz(&inputs, cases(), |bytes| {
        match FaultProfile::from_bytes(bytes, "fuzz-chip.sramprof") {
            Err(e) => check_error(&e.to_string(), "fuzz-chip.sramprof"),
            Ok(p) => check_profile(&p),
        }
    });
}

#[test]
fn shipped_gzip_profiles_survive_mutation() {
    let inputs = vec![whole(&root().join("sram_profiles/chip1.sramprof.gz"))];
    fuzz(
        &inputs,
        cases().div_ceil(4),
        |bytes| match FaultProfile::from_bytes(bytes, "fuzz-chip1.sramprof.gz") {
            Err(e) => check_error(&e.to_string(), "fuzz-chip1.sramprof.gz"),
            Ok(p) => check_profile(&p),
        },
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Fault patterns (written by `profile pattern`'s code path from the shipped chip1 and 14nm_sram)

fn small_pattern_file() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let cfg = HwConfig::load_named("14nm_sram").unwrap();
        let profile = FaultProfile::load(&FaultProfile::resolve("chip1").unwrap()).unwrap();
        let mapping = WeightMapping::new(&cfg.weight_sram, 8, 4000, 0).unwrap();
        let pat = sram::chip_fault_pattern_at(&profile, &mapping, 0.8, 3).unwrap();
        assert!(!pat.entries.is_empty());
        let meta = [
            ("source", "accelsim profile pattern"),
            ("profile", "chip1"),
            ("vdd_rel", "0.8"),
            ("seed", "3"),
            ("elements", "4000"),
            ("p01", "0.01"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.safetensors");
        pat.write_with_metadata(&path, &meta).unwrap();
        std::fs::read(&path).unwrap()
    })
}

#[test]
fn fault_patterns_survive_mutation() {
    let bytes = small_pattern_file().to_vec();
    let hot = safetensors_header_len(&bytes) + 32;
    let path = Path::new("fuzz-pattern.safetensors");
    fuzz(
        &[(bytes, hot)],
        cases(),
        |b| match FaultPattern::from_bytes_with_metadata(b, path) {
            Err(e) => check_error(&e.to_string(), "fuzz-pattern.safetensors"),
            Ok((p, meta)) => {
                prop_assert!((1..=32).contains(&p.bits));
                let mask = if p.bits == 32 {
                    u32::MAX
                } else {
                    (1u32 << p.bits) - 1
                };
                for w in p.entries.windows(2) {
                    prop_assert!(w[0].index < w[1].index);
                }
                for e in &p.entries {
                    prop_assert_eq!((e.flip | e.set0 | e.set1) & !mask, 0);
                }
                if let (Some(n), Some(last)) = (meta.get("elements"), p.entries.last()) {
                    prop_assert!(last.index < n.parse::<u64>().unwrap());
                }
                Ok(())
            }
        },
    );
}

// ---------------------------------------------------------------------------------------------------------------
// .npy, IDX, CIFAR

fn dataset_dir() -> Option<&'static Path> {
    let d = Path::new(data::DEFAULT_FASHION_MNIST_DIR);
    d.join("t10k-labels-idx1-ubyte.gz").is_file().then_some(d)
}

/// IDX bytes from a header and payload.
fn idx(dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

/// The first `n` images and labels of the installed Fashion-MNIST test split as IDX bytes (synthetic ones when
/// the dataset is not installed).
fn small_idx(n: usize) -> (Vec<u8>, Vec<u8>) {
    match dataset_dir() {
        Some(d) => {
            let img = gunzip(&std::fs::read(d.join("t10k-images-idx3-ubyte.gz")).unwrap());
            let lab = gunzip(&std::fs::read(d.join("t10k-labels-idx1-ubyte.gz")).unwrap());
            (
                idx(&[n as u32, 28, 28], &img[16..16 + n * 784]),
                idx(&[n as u32], &lab[8..8 + n]),
            )
        }
        None => {
            let pix: Vec<u8> = (0..n * 784).map(|i| (i * 31 % 256) as u8).collect();
            let lab: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
            (idx(&[n as u32, 28, 28], &pix), idx(&[n as u32], &lab))
        }
    }
}

#[test]
fn npy_files_survive_mutation() {
    let m = Model::load(root().join("models/fmnist-cnn-normal-8b.toml")).unwrap();
    let w = m.param_tensors()[0].clone();
    let floats = npy::to_bytes(&NpyArray {
        shape: w.shape.clone(),
        data: NpyData::F32(m.float_param(0).to_vec()),
    })
    .unwrap();
    let (img, _) = small_idx(8);
    let pixels = npy::to_bytes(&NpyArray {
        shape: vec![8, 28, 28],
        data: NpyData::U8(img[16..].to_vec()),
    })
    .unwrap();
    let codes = npy::to_bytes(&NpyArray {
        shape: vec![w.len],
        data: NpyData::I16(
            m.memory_image()[..w.len]
                .iter()
                .map(|&b| b as i16)
                .collect(),
        ),
    })
    .unwrap();
    let inputs: Vec<_> = [floats, pixels, codes]
        .into_iter()
        .map(|b| (b, 128))
        .collect();
    let path = Path::new("fuzz.npy");
    fuzz(&inputs, cases(), |b| match npy::parse(b, path) {
        Err(e) => check_error(&e.to_string(), "fuzz.npy"),
        Ok(a) => {
            prop_assert!(a.shape.len() <= npy::MAX_NDIM);
            let n = a.shape.iter().try_fold(1usize, |x, &d| x.checked_mul(d));
            prop_assert_eq!(n, Some(a.data.len()));
            Ok(())
        }
    });
}

#[test]
fn idx_files_survive_mutation() {
    let (img, lab) = small_idx(32);
    let mut inputs = vec![
        (img.clone(), 16),
        (lab.clone(), 8),
        (gzip(&img), 32),
        (gzip(&lab), 32),
    ];
    if let Some(d) = dataset_dir() {
        // The real labels file as shipped by Debian (gzip, 10000 labels).
        inputs.push(whole(&d.join("t10k-labels-idx1-ubyte.gz")));
    }
    let file = Path::new("fuzz-idx3-ubyte");
    fuzz(&inputs, cases(), |b| {
        let decoded = match data::idx::decode_idx(b, file) {
            Err(e) => return check_error(&e.to_string(), "fuzz-idx3-ubyte"),
            Ok(d) => d,
        };
        match data::idx::parse_idx(&decoded, file) {
            Err(e) => check_error(&e.to_string(), "fuzz-idx3-ubyte"),
            Ok((dims, payload)) => {
                let n = dims.iter().try_fold(1usize, |x, &d| x.checked_mul(d));
                prop_assert_eq!(n, Some(payload.len()));
                Ok(())
            }
        }
    });
}

#[test]
fn idx_pairs_load_or_fail_cleanly() {
    let (img, lab) = small_idx(32);
    let (ip, lp) = (Path::new("fuzz-images"), Path::new("fuzz-labels"));
    let mut r = runner(cases());
    r.run(&(any::<bool>(), edits()), |(images, e)| {
        let (i, l) = if images {
            (mutate(&img, &e, 16), lab.clone())
        } else {
            (img.clone(), mutate(&lab, &e, 8))
        };
        match data::idx::load_from_bytes(DatasetKind::FashionMnist, &i, ip, &l, lp, Some(20)) {
            Err(err) => {
                let msg = err.to_string();
                check_error(&msg, if images { "fuzz-images" } else { "fuzz-labels" })?;
            }
            Ok(ds) => {
                let s = ds.images.shape();
                prop_assert!(ds.len() <= 20 && s[0] == ds.len());
                prop_assert!(ds.labels.iter().all(|&l| (l as usize) < ds.classes));
            }
        }
        check_allocations()
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn cifar_files_survive_mutation() {
    let record = |labels: &[u8], seed: u8| -> Vec<u8> {
        let mut r = labels.to_vec();
        r.extend((0..3072u32).map(|i| seed.wrapping_add((i % 253) as u8)));
        r
    };
    let c10: Vec<u8> = (0..3u8).flat_map(|i| record(&[i], i)).collect();
    let c100: Vec<u8> = (0..3u8).flat_map(|i| record(&[i, 90 + i], i)).collect();
    let inputs = vec![(c10, 8), (c100, 8)];
    let path = Path::new("fuzz-test_batch.bin");
    fuzz(&inputs, cases(), |b| {
        for (kind, label_bytes) in [(DatasetKind::Cifar10, 1), (DatasetKind::Cifar100, 2)] {
            match data::cifar::parse_cifar(kind, b, path, label_bytes, None) {
                Err(e) => check_error(&e.to_string(), "fuzz-test_batch.bin")?,
                Ok(ds) => {
                    prop_assert_eq!(ds.images.shape(), &[ds.len(), 3, 32, 32]);
                    prop_assert!(ds.labels.iter().all(|&l| (l as usize) < kind.classes()));
                }
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------------------------
// The mutation engine itself

#[test]
fn mutations_cover_truncation_and_header_bytes() {
    let input: Vec<u8> = (0..=255).collect();
    assert_eq!(mutate(&input, &[Edit::Truncate(10)], 16).len(), 10);
    let hot = mutate(&input, &[Edit::Set(0x8000_0000 | 1000, 0xaa)], 16);
    assert_eq!(hot[1000 % 16], 0xaa, "top bit: inside the header");
    let cold = mutate(&input, &[Edit::Set(1000, 0xaa)], 16);
    assert_eq!(cold[1000 % 256], 0xaa);
    let t = mutate(b"ab", &[Edit::Token(1, 0)], 2);
    assert_eq!(t, b"ananb");
    assert_eq!(mutate(b"abcd", &[Edit::Delete(1, 2)], 4), b"ad");
    assert_eq!(mutate(b"abcd", &[Edit::Duplicate(1, 2)], 4), b"abcbcd");
    assert!(mutate(b"", &[Edit::Set(3, 1), Edit::Delete(0, 3)], 4).is_empty());
}

// ---------------------------------------------------------------------------------------------------------------
// The issue's cases, driven through the binary: exit code 2 and one line naming the file, the key and the range

fn accelsim(args: &[&str]) -> (Option<i32>, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_accelsim"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run accelsim");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn expect_user_error(args: &[&str], needles: &[&str]) {
    let (code, err) = accelsim(args);
    assert_eq!(code, Some(2), "{args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.trim_end().lines().count() == 1,
        "{args:?}: not one line: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected `{n}` in {err}");
    }
}

#[test]
fn bad_files_through_the_binary_give_one_line_errors() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let s = |p: &Path| p.display().to_string();
    // A model manifest edited in place next to a copy of its tensors.
    let manifest = String::from_utf8(read("models/fmnist-cnn-normal-8b.toml")).unwrap();
    let weights = read("models/fmnist-cnn-normal-8b.safetensors");
    std::fs::write(dir.join("fmnist-cnn-normal-8b.safetensors"), &weights).unwrap();
    let model = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        s(&p)
    };
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            model(
                "mean.toml",
                manifest.replace("mean = [0.286]", "mean = [nan]"),
            ),
            vec!["mean.toml", "key `input.mean`", "NaN", "[-1000, 1000]"],
        ),
        (
            model(
                "inf.toml",
                manifest.replace("mean = [0.286]", "mean = [inf]"),
            ),
            vec!["key `input.mean`", "inf"],
        ),
        (
            model(
                "err.toml",
                manifest.replace("clean_error_pct = 8.24", "clean_error_pct = nan"),
            ),
            vec!["key `training.clean_error_pct`", "[0, 100]"],
        ),
        (
            model("type.toml", manifest.replace("bits = 8", "bits = \"8\"")),
            vec![
                "type.toml",
                "key `quantization.bits`: expected a non-negative integer, found a string \"8\"",
            ],
        ),
    ];
    for (path, needles) in &cases {
        expect_user_error(&["model", "show", path], needles);
    }
    assert!(manifest.contains("mean = [0.286]") && manifest.contains("clean_error_pct = 8.24"));

    // A tensors file whose header claims more data than the file holds.
    let mut cut = weights.clone();
    cut.truncate(weights.len() / 2);
    let sub = dir.join("cut");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("fmnist-cnn-normal-8b.safetensors"), &cut).unwrap();
    std::fs::write(sub.join("m.toml"), &manifest).unwrap();
    expect_user_error(
        &["model", "show", &s(&sub.join("m.toml"))],
        &[
            "fmnist-cnn-normal-8b.safetensors",
            "data_offsets",
            "truncated",
        ],
    );

    // A hardware config with a wrong type and with a NaN.
    let hw = String::from_utf8(read("hw_configs/14nm_sram.toml")).unwrap();
    for (name, text, needles) in [
        (
            "type.toml",
            hw.replacen("vmin_v = 1.0", "vmin_v = \"1.0\"", 1),
            vec!["key `voltage.vmin_v`: expected a float, found a string"],
        ),
        (
            "nan.toml",
            hw.replacen("vmin_v = 1.0", "vmin_v = nan", 1),
            vec!["key `voltage.vmin_v` = NaN is out of range; allowed 0.2..=2 V"],
        ),
    ] {
        let p = dir.join(format!("hw-{name}"));
        std::fs::write(&p, text).unwrap();
        expect_user_error(
            &[
                "cycles",
                "--topology",
                "hw_configs/topologies/fmnist_cnn.csv",
                "--hw",
                &s(&p),
            ],
            &needles,
        );
    }

    // A .npy whose shape claims 2^62 elements, and a pattern file cut short.
    let mut npy_bytes = b"\x93NUMPY\x01\x00".to_vec();
    let dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (4611686018427387904,), }\n";
    npy_bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    npy_bytes.extend_from_slice(dict.as_bytes());
    npy_bytes.extend_from_slice(&[0; 16]);
    let big = dir.join("big.npy");
    std::fs::write(&big, &npy_bytes).unwrap();
    let out = s(&dir.join("out.npy"));
    expect_user_error(
        &[
            "inject",
            "--input",
            &s(&big),
            "--bits",
            "8",
            "--p",
            "0.01",
            "--seed",
            "1",
            "--output",
            &out,
        ],
        &["big.npy", "truncated data"],
    );
    let codes = dir.join("codes.npy");
    npy::write(
        &codes,
        &NpyArray {
            shape: vec![4000],
            data: NpyData::U8(vec![7; 4000]),
        },
    )
    .unwrap();
    let pat = small_pattern_file();
    let cut = dir.join("cut.safetensors");
    std::fs::write(&cut, &pat[..pat.len() - 5]).unwrap();
    expect_user_error(
        &[
            "inject",
            "--input",
            &s(&codes),
            "--bits",
            "8",
            "--replay",
            &s(&cut),
            "--output",
            &out,
        ],
        &["cut.safetensors", "truncated"],
    );

    // Fashion-MNIST files whose IDX header claims 2^32 x 2^32 x 2^32 images (gzip).
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("t10k-images-idx3-ubyte.gz"),
        gzip(&idx(&[u32::MAX; 3], &[0; 64])),
    )
    .unwrap();
    std::fs::write(
        data.join("t10k-labels-idx1-ubyte.gz"),
        gzip(&idx(&[4], &[0, 1, 2, 3])),
    )
    .unwrap();
    expect_user_error(
        &[
            "eval",
            "--model",
            "models/fmnist-cnn-normal-8b.toml",
            "--data",
            &s(&data),
        ],
        &[
            "t10k-images-idx3-ubyte.gz",
            "declare more than the 2 GiB limit",
        ],
    );
}
