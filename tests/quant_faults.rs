//! Integration tests of issue 2: the shared quantization vectors and the `quantize` / `inject` commands,
//! driven like a user would.

use std::path::{Path, PathBuf};
use std::process::Command;

use accelsim::faults::{try_sample_bit_errors, BitErrorRates, FaultPattern};
use accelsim::npy::{self, NpyArray, NpyData};
use accelsim::quant::{self, vectors, Codes, QuantConfig};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/quant_vectors.json");

/// The checked-in vectors are exactly what the current quantizer produces (regenerate with
/// `cargo test --test quant_faults -- --ignored regenerate_vectors` after an intended change).
#[test]
fn vectors_file_matches_the_quantizer() {
    let text = std::fs::read_to_string(VECTORS).expect("tests/data/quant_vectors.json is missing");
    let file: vectors::VectorFile = serde_json::from_str(&text).expect("vector file parses");
    assert_eq!(file.version, vectors::VERSION);
    let fresh = vectors::generate().unwrap();
    assert_eq!(file.cases.len(), fresh.cases.len());
    for (c, f) in file.cases.iter().zip(&fresh.cases) {
        assert_eq!(c.name, f.name);
        assert_eq!(
            c.input.len(),
            c.shape.iter().product::<usize>(),
            "{}",
            c.name
        );
        // Recompute from the file's own input and scheme, compare bit for bit.
        let q = quant::quantize(&c.input, &c.shape, &c.config()).unwrap();
        assert_eq!(q.codes().to_i64_vec(), c.codes, "codes of {}", c.name);
        let d = q.dequantize();
        assert!(
            d.iter()
                .zip(&c.dequantized)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "dequantized of {}",
            c.name
        );
        assert_eq!(c, f, "case {} differs from the generator", c.name);
    }
    // Every scheme at m = 8, 4, 2 (unsigned) and 8, 16, 32 (signed) is covered.
    for signed in [false, true] {
        for bits in if signed { [8u8, 16, 32] } else { [8u8, 4, 2] } {
            let n = file
                .cases
                .iter()
                .filter(|c| c.signed == signed && c.bits == bits)
                .count();
            assert!(n >= 24, "{n} cases for signed={signed} bits={bits}");
        }
    }
    // The fixed-range extremes cases pin the reference decode: ±w_max exactly, never ±(w_max + ε)·k/levels.
    let extremes: Vec<_> = file
        .cases
        .iter()
        .filter(|c| c.name.ends_with("_global_sym_round_wmax0.1_extremes"))
        .collect();
    assert_eq!(extremes.len(), 3);
    for c in extremes {
        assert_eq!(&c.dequantized[..4], &[-0.1, 0.1, -0.1, 0.1], "{}", c.name);
    }
    assert_eq!(
        vectors::to_json(&fresh),
        text,
        "formatting differs: regenerate the file"
    );
}

#[test]
#[ignore = "rewrites tests/data/quant_vectors.json"]
fn regenerate_vectors() {
    let f = vectors::generate().unwrap();
    std::fs::write(VECTORS, vectors::to_json(&f)).unwrap();
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_accelsim"))
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], dir: &Path) -> Out {
    let o = bin().args(args).current_dir(dir).output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A user error: exit code 2 and exactly one line on stderr that mentions `needle`.
fn assert_user_error(args: &[&str], dir: &Path, needle: &str) {
    let o = run(args, dir);
    assert_eq!(o.code, 2, "{args:?}: stderr {}", o.stderr);
    let lines: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: {:?}", o.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(
        lines[0].contains(needle),
        "{args:?}: {} lacks {needle:?}",
        lines[0]
    );
    assert!(!o.stderr.contains("panicked"));
}

fn weights(dir: &Path) -> (PathBuf, Vec<f32>) {
    let v: Vec<f32> = (0..600).map(|i| ((i as f32) * 0.37).sin() * 0.2).collect();
    let p = dir.join("w.npy");
    npy::write_f32(&p, &v, &[20, 30]).unwrap();
    (p, v)
}

#[test]
fn quantize_command_matches_the_library_for_each_storage_type() {
    let dir = tempfile::tempdir().unwrap();
    let (_, v) = weights(dir.path());
    for (flags, cfg) in [
        (
            vec!["--bits", "8", "--scheme", "rquant", "--w-max", "0.1"],
            QuantConfig::rquant(8).with_w_max(0.1),
        ),
        (
            vec!["--bits", "4", "--scheme", "normal"],
            QuantConfig::normal(4),
        ),
        (
            vec![
                "--bits",
                "16",
                "--granularity",
                "channel",
                "--symmetric",
                "--signed",
                "--rounding",
            ],
            QuantConfig {
                signed: true,
                symmetric: true,
                granularity: quant::Granularity::Channel,
                ..QuantConfig::rquant(16)
            },
        ),
        (
            vec![
                "--bits",
                "8",
                "--granularity",
                "global",
                "--asymmetric",
                "--signed",
                "--truncation",
            ],
            QuantConfig {
                signed: true,
                granularity: quant::Granularity::Global,
                rounding: quant::Rounding::Truncate,
                ..QuantConfig::rquant(8)
            },
        ),
    ] {
        let mut args = vec!["quantize"];
        args.extend(&flags);
        args.extend([
            "--input",
            "w.npy",
            "--codes",
            "c.npy",
            "--dequantized",
            "d.npy",
        ]);
        let o = run(&args, dir.path());
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert!(o.stdout.contains(&cfg.describe()), "{}", o.stdout);
        let q = quant::quantize(&v, &[20, 30], &cfg).unwrap();
        let codes = npy::read(&dir.path().join("c.npy")).unwrap();
        assert_eq!(codes.shape, vec![20, 30]);
        let got = match (&codes.data, q.codes()) {
            (NpyData::U8(a), Codes::U8(b)) => a == b,
            (NpyData::I8(a), Codes::I8(b)) => a == b,
            (NpyData::I16(a), Codes::I16(b)) => a == b,
            (NpyData::I32(a), Codes::I32(b)) => a == b,
            _ => false,
        };
        assert!(
            got,
            "codes dtype/content for {flags:?}: {}",
            codes.data.dtype_name()
        );
        let (d, shape) = npy::read_f32(&dir.path().join("d.npy")).unwrap();
        assert_eq!(shape, vec![20, 30]);
        assert!(d
            .iter()
            .zip(q.dequantize())
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

#[test]
fn inject_is_reproducible_nested_and_replayable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    weights(d);
    let o = run(
        &[
            "quantize", "--bits", "6", "--scheme", "rquant", "--input", "w.npy", "--codes", "c.npy",
        ],
        d,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let inject = |p: &str, seed: &str, out: &str, extra: &[&str]| {
        let mut a = vec![
            "inject", "--input", "c.npy", "--bits", "6", "--p", p, "--seed", seed, "--output", out,
        ];
        a.extend(extra);
        let o = run(&a, d);
        assert_eq!(o.code, 0, "{}", o.stderr);
        o.stdout
    };
    inject("0.05", "7", "a.npy", &["--pattern", "pat.safetensors"]);
    inject("0.05", "7", "b.npy", &[]);
    assert_eq!(
        std::fs::read(d.join("a.npy")).unwrap(),
        std::fs::read(d.join("b.npy")).unwrap()
    );
    inject("0.01", "7", "lo.npy", &[]);
    let read_u8 = |f: &str| match npy::read(&d.join(f)).unwrap().data {
        NpyData::U8(v) => v,
        other => panic!("{f}: {}", other.dtype_name()),
    };
    let (c, hi, lo) = (read_u8("c.npy"), read_u8("a.npy"), read_u8("lo.npy"));
    let mut flips = 0;
    for i in 0..c.len() {
        let (fh, fl) = (c[i] ^ hi[i], c[i] ^ lo[i]);
        assert_eq!(
            fl & !fh,
            0,
            "p = 0.01 flips must be a subset of p = 0.05 flips"
        );
        assert_eq!(fh & 0xc0, 0, "protected bits flipped");
        flips += fh.count_ones();
    }
    assert!(flips > 0);
    // The CLI's flips are the library's flips for the same seed.
    let lib = try_sample_bit_errors(&c, 6, BitErrorRates::uniform(0.05), 7).unwrap();
    assert_eq!(lib.flip_count(), flips as u64);
    let saved = FaultPattern::read(&d.join("pat.safetensors")).unwrap();
    assert_eq!(saved, lib);
    // Replay onto another array of the same length.
    let other: Vec<u8> = (0..600).map(|i| (i % 64) as u8).collect();
    npy::write(
        &d.join("o.npy"),
        &NpyArray {
            shape: vec![600],
            data: NpyData::U8(other.clone()),
        },
    )
    .unwrap();
    let o = run(
        &[
            "inject",
            "--input",
            "o.npy",
            "--bits",
            "6",
            "--replay",
            "pat.safetensors",
            "--output",
            "o2.npy",
        ],
        d,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut expect = other.clone();
    saved.apply_u8(&mut expect).unwrap();
    assert_eq!(read_u8("o2.npy"), expect);
    // Separate direction rates.
    let o = run(
        &[
            "inject", "--input", "c.npy", "--bits", "6", "--p01", "0", "--p10", "1", "--seed", "1",
            "--output", "z.npy",
        ],
        d,
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        read_u8("z.npy").iter().all(|&x| x == 0),
        "p10 = 1 clears every stored 1"
    );
}

#[test]
fn bad_input_gives_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    weights(d);
    npy::write(
        &d.join("f64.npy"),
        &NpyArray {
            shape: vec![2],
            data: NpyData::F64(vec![0.0, 1.0]),
        },
    )
    .unwrap();
    npy::write(
        &d.join("c.npy"),
        &NpyArray {
            shape: vec![3],
            data: NpyData::U8(vec![1, 2, 200]),
        },
    )
    .unwrap();
    npy::write(
        &d.join("i16.npy"),
        &NpyArray {
            shape: vec![3],
            data: NpyData::I16(vec![1, 2, 3]),
        },
    )
    .unwrap();
    std::fs::write(d.join("junk.npy"), b"nonsense").unwrap();
    fn q<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["quantize"];
        a.extend(extra);
        a
    }
    let io = ["--input", "w.npy", "--codes", "c_out.npy"];
    assert_user_error(
        &q(&[
            "--bits",
            "8",
            "--scheme",
            "rquant",
            "--input",
            "missing.npy",
            "--codes",
            "x.npy",
        ]),
        d,
        "missing.npy",
    );
    assert_user_error(
        &q(&[
            "--bits", "8", "--scheme", "rquant", "--input", "f64.npy", "--codes", "x.npy",
        ]),
        d,
        "float64",
    );
    assert_user_error(
        &q(&[
            "--bits", "8", "--scheme", "rquant", "--input", "junk.npy", "--codes", "x.npy",
        ]),
        d,
        "junk.npy",
    );
    assert_user_error(
        &q(&[&["--bits", "9", "--scheme", "rquant"][..], &io].concat()),
        d,
        "--bits 9",
    );
    assert_user_error(
        &q(&[
            &[
                "--bits",
                "4",
                "--granularity",
                "layer",
                "--signed",
                "--symmetric",
                "--rounding",
            ][..],
            &io,
        ]
        .concat()),
        d,
        "--bits 4",
    );
    assert_user_error(
        &q(&[
            &["--bits", "8", "--scheme", "rquant", "--w-max", "0"][..],
            &io,
        ]
        .concat()),
        d,
        "--w-max",
    );
    assert_user_error(
        &q(&[
            &["--bits", "8", "--scheme", "rquant", "--w-max", "-1"][..],
            &io,
        ]
        .concat()),
        d,
        "--w-max",
    );
    assert_user_error(
        &q(&[
            &[
                "--bits",
                "8",
                "--granularity",
                "layer",
                "--symmetric",
                "--asymmetric",
                "--unsigned",
                "--rounding",
            ][..],
            &io,
        ]
        .concat()),
        d,
        "conflict",
    );
    assert_user_error(
        &q(&[
            &["--bits", "8", "--scheme", "normal", "--rounding"][..],
            &io,
        ]
        .concat()),
        d,
        "conflicts with --scheme normal",
    );
    assert_user_error(
        &q(&[&["--bits", "8", "--scheme", "fancy"][..], &io].concat()),
        d,
        "--scheme fancy",
    );
    assert_user_error(
        &q(&[
            &[
                "--bits",
                "8",
                "--granularity",
                "tensor",
                "--symmetric",
                "--unsigned",
                "--rounding",
            ][..],
            &io,
        ]
        .concat()),
        d,
        "--granularity tensor",
    );
    assert_user_error(
        &q(&[
            &[
                "--bits",
                "8",
                "--granularity",
                "layer",
                "--unsigned",
                "--rounding",
            ][..],
            &io,
        ]
        .concat()),
        d,
        "--symmetric or --asymmetric",
    );

    fn inj<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut a = vec!["inject", "--input", "c.npy", "--output", "o.npy"];
        a.extend(extra);
        a
    }
    assert_user_error(
        &inj(&["--bits", "8", "--p", "1.5", "--seed", "1"]),
        d,
        "--p 1.5",
    );
    assert_user_error(
        &inj(&["--bits", "8", "--p", "-0.1", "--seed", "1"]),
        d,
        "--p -0.1",
    );
    assert_user_error(
        &inj(&["--bits", "8", "--p", "NaN", "--seed", "1"]),
        d,
        "--p NaN",
    );
    assert_user_error(
        &inj(&["--bits", "8", "--p", "1%", "--seed", "1"]),
        d,
        "--p 1%",
    );
    assert_user_error(
        &inj(&["--bits", "8", "--p01", "0.1", "--seed", "1"]),
        d,
        "--p10",
    );
    assert_user_error(&inj(&["--bits", "8", "--p", "0.1"]), d, "--seed");
    assert_user_error(
        &inj(&["--bits", "9", "--p", "0.1", "--seed", "1"]),
        d,
        "--bits 9",
    );
    assert_user_error(
        &inj(&["--bits", "1", "--p", "0.1", "--seed", "1"]),
        d,
        "--bits 1",
    );
    assert_user_error(
        &inj(&["--bits", "4", "--p", "0.1", "--seed", "1"]),
        d,
        "element 2",
    );
    assert_user_error(
        &inj(&[
            "--bits",
            "8",
            "--p",
            "0.1",
            "--seed",
            "1",
            "--replay",
            "p.safetensors",
        ]),
        d,
        "conflict",
    );
    assert_user_error(
        &inj(&["--bits", "8", "--replay", "missing.safetensors"]),
        d,
        "missing.safetensors",
    );
    assert_user_error(
        &[
            "inject", "--input", "i16.npy", "--output", "o.npy", "--bits", "8", "--p", "0.1",
            "--seed", "1",
        ],
        d,
        "int16",
    );
    assert_user_error(
        &[
            "inject", "--input", "w.npy", "--output", "o.npy", "--bits", "8", "--p", "0.1",
            "--seed", "1",
        ],
        d,
        "float32",
    );
}
