//! Bad command lines driven through the binary: every one must end with exit code 2 and exactly one line on
//! stderr that names the flag or file, the rejected value and the allowed range (README "Errors"; the name and
//! path rule is docs/run-and-sweep.md "Names and paths").
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin_in(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_accelsim"));
    c.current_dir(dir);
    c
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    bin_in(dir).args(args).output().unwrap()
}

/// Runs `args` in `dir` and checks the one-line user error: exit 2, one stderr line starting `error: `, nothing on
/// stdout, and every needle in the line. Returns the line.
fn user_error_in(dir: &Path, args: &[&str], needles: &[&str]) -> String {
    let o = run_in(dir, args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(
        err.starts_with("error: ") && err.ends_with('\n') && err.lines().count() == 1,
        "{args:?}: not exactly one line: {err:?}"
    );
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(o.stdout.is_empty(), "{args:?}: wrote to stdout");
    for n in needles {
        assert!(err.contains(n), "{args:?}: expected `{n}` in {err}");
    }
    err
}

fn user_error(args: &[&str], needles: &[&str]) -> String {
    user_error_in(repo(), args, needles)
}

#[test]
fn clap_errors_keep_names_suggestions_and_the_help_to_read() {
    user_error(
        &["run"],
        &[
            "the following required arguments were not provided: --vdd <V>",
            "(see 'accelsim run --help')",
        ],
    );
    user_error(
        &["cycles"],
        &["not provided: --topology <CSV>", "'accelsim cycles --help'"],
    );
    user_error(
        &["profile", "generate"],
        &[
            "--style <STYLE>",
            "--seed <S>",
            "--out <FILE>",
            "'accelsim profile generate --help'",
        ],
    );
    user_error(&["model", "show"], &["not provided: <MODEL>"]);
    user_error(
        &["run", "--offset", "3", "--vdd", "0.9"],
        &[
            "unexpected argument '--offset' found",
            "did you mean '--offsets'?",
        ],
    );
    user_error(&["cycle"], &["'cycle'", "did you mean 'cycles'?"]);
    user_error(
        &["frobnicate"],
        &[
            "unrecognized subcommand 'frobnicate'",
            "subcommands: quantize, inject, model, eval, import, profile, cycles, run, sweep",
        ],
    );
    user_error(&[], &["'accelsim' needs a subcommand: quantize, inject"]);
    user_error(
        &["model"],
        &[
            "'accelsim model' needs a subcommand: show",
            "'accelsim model --help'",
        ],
    );
    user_error(
        &["profile"],
        &["'accelsim profile' needs a subcommand: generate, stats"],
    );
    user_error(
        &["run", "--vdd"],
        &["--vdd needs a value (--vdd <V>)", "'accelsim run --help'"],
    );
    user_error(
        &["run", "--vdd", "0.9", "--vdd", "0.8"],
        &["--vdd was given more than once"],
    );
    user_error(
        &["run", "--vdd", "1", "extra"],
        &["unexpected argument 'extra' found"],
    );
    user_error(
        &["eval", "--model", "x", "--limit", "5", "--paper-protocol"],
        &["--limit", "cannot be used with", "--paper-protocol"],
    );
    user_error(
        &["cycles", "--topology", "resnet20", "--json", "--csv"],
        &["--json cannot be used with --csv"],
    );
}

#[test]
fn negative_numbers_are_values_refused_with_the_range() {
    let e = user_error(
        &["run", "--vdd", "-1"],
        &[
            "--vdd -1 V is out of range for ",
            "hw_configs/14nm_sram.toml",
            "allowed 0.500..=1.725 V",
        ],
    );
    assert!(
        !e.contains("key") && !e.contains("unexpected argument"),
        "{e}"
    );
    user_error(
        &["run", "--vdd", "0.9", "--ber", "-0.1"],
        &["--ber -0.1 is out of range; allowed 0..=1 (a per-bit probability"],
    );
    user_error(
        &["eval", "--model", "fmnist-cnn-randbet-8b", "--limit", "-5"],
        &[
            "--limit -5 is out of range; allowed >= 1",
            "'accelsim eval --help'",
        ],
    );
    user_error(
        &["run", "--vdd", "0.9", "--limit", "-5"],
        &["--limit -5 is out of range; allowed >= 1"],
    );
    user_error(
        &["sweep", "--limit", "-5"],
        &["--limit -5 is out of range; allowed >= 1"],
    );
    user_error(
        &["run", "--vdd", "0.9", "--offsets", "-1"],
        &["--offsets -1 is out of range; allowed 1..=1024"],
    );
    user_error(
        &["run", "--vdd", "0.9", "--skip", "-5"],
        &["--skip -5 is out of range; allowed >= 0"],
    );
    user_error(
        &["sweep", "--tolerance", "-1"],
        &["--tolerance -1 is out of range; allowed 0..=100 percentage points"],
    );
    user_error(
        &[
            "profile", "generate", "--style", "chip1", "--seed", "-1", "--out", "x",
        ],
        &["--seed -1 is out of range; allowed >= 0"],
    );
    user_error(
        &["cycles", "--topology", "resnet20", "--vdd", "-0.5"],
        &[
            "--vdd -0.5 V is out of range for ",
            "14nm_sram.toml",
            "allowed 0.500..=1.725 V",
        ],
    );
    user_error(
        &["profile", "stats", "chip1", "--vdd-rel", "1,-3"],
        &[
            "sram_profiles/chip1.sramprof.gz",
            "vdd_rel = -3",
            "allowed 0.75..=2",
        ],
    );
}

#[test]
fn integer_and_float_flags_state_their_real_range() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--vdd", "0.9", "--offsets", "0"],
            "--offsets 0 is out of range; allowed 1..=1024",
        ),
        (
            &["run", "--vdd", "0.9", "--offsets", "99999999999"],
            "--offsets 99999999999 is out of range; allowed 1..=1024",
        ),
        (
            &["run", "--vdd", "0.9", "--seeds", "1.5"],
            "--seeds 1.5 is not an integer; allowed 1..=1024",
        ),
        (
            &["run", "--vdd", "0.9", "--seeds", "1025"],
            "--seeds 1025 is out of range; allowed 1..=1024",
        ),
        (
            &["run", "--vdd", "0.9", "--limit", "0"],
            "--limit 0 is out of range; allowed >= 1",
        ),
        (
            &["run", "--vdd", "0.9", "--ber", "1.5"],
            "--ber 1.5 is out of range; allowed 0..=1",
        ),
        (
            &["run", "--vdd", "nan"],
            "--vdd nan is not a finite number: expected volts",
        ),
        (&["run", "--vdd", "abc"], "--vdd abc is not a number: expected volts"),
        (
            &["run", "--vdd", "3"],
            "--vdd 3 V is out of range for ",
        ),
        (
            &["sweep", "--offsets", "0"],
            "--offsets 0 is out of range; allowed 1..=1024",
        ),
        (
            &["sweep", "--seeds", "2000"],
            "--seeds 2000 is out of range; allowed 1..=1024",
        ),
        (
            &["sweep", "--tolerance", "inf"],
            "--tolerance inf is not a finite number; allowed 0..=100",
        ),
        (
            &["cycles", "--topology", "resnet20", "--weight-bits", "0"],
            "--weight-bits 0 is out of range; allowed 1..=32",
        ),
        (
            &["cycles", "--topology", "resnet20", "--weight-bits", "33"],
            "--weight-bits 33 is out of range; allowed 1..=32",
        ),
        (
            &["profile", "generate", "--style", "chip1", "--seed", "1", "--out", "x", "--arrays", "0"],
            "--arrays 0 is out of range; allowed 1..=65536",
        ),
        (
            &["profile", "generate", "--style", "chip1", "--seed", "1", "--out", "x", "--rows", "70000"],
            "--rows 70000 is out of range; allowed 1..=65536",
        ),
        (
            &["profile", "generate", "--style", "chip1", "--seed", "1", "--out", "x", "--columns", "5000"],
            "--columns 5000 is out of range; allowed 1..=4096",
        ),
        (
            &["profile", "generate", "--style", "chip1", "--seed", "1", "--out", "x", "--floor", "1"],
            "--floor 1 is out of range; allowed 0.75 <= floor < 1",
        ),
        (
            &["profile", "generate", "--style", "chip1", "--seed", "1x", "--out", "x"],
            "--seed 1x is not an integer; allowed >= 0",
        ),
        (
            &[
                "profile", "pattern", "chip1", "--bits", "8", "--elements", "1000000000000", "--vdd-rel", "0.9",
                "--out", "x",
            ],
            "--elements 1000000000000 is out of range; allowed 1..=268435456",
        ),
        (
            &["profile", "pattern", "chip1", "--bits", "0", "--elements", "10", "--vdd-rel", "0.9", "--out", "x"],
            "--bits 0 is out of range; allowed 1..=32",
        ),
        (
            &[
                "profile", "pattern", "chip1", "--bits", "8", "--elements", "10", "--vdd-rel", "0.9", "--out", "x",
                "--offset-bits", "3",
            ],
            "--offset-bits 3 is out of range for ",
        ),
        (
            &["profile", "show", "chip1", "--vdd-rel", "0.9", "--out", "x.png", "--array", "4294967295"],
            "--array 4294967295 is out of range; allowed 0..=65535",
        ),
        (
            &["profile", "show", "chip1", "--vdd-rel", "0.9", "--out", "x.png", "--array", "40"],
            "--array 40 --arrays 2 is outside profile sram_profiles/chip1.sramprof.gz, which has 8 arrays",
        ),
        (
            &["profile", "show", "chip1", "--vdd-rel", "x", "--out", "x.png"],
            "--vdd-rel x is not a number",
        ),
    ];
    for (args, needle) in cases {
        let e = user_error(args, &[needle]);
        // The stated range is the flag's own, never its Rust type's.
        let range = e.split_once("allowed").map_or("", |(_, r)| r);
        for type_range in ["4294967295", "18446744073709551615", "0..=255"] {
            assert!(!range.contains(type_range), "{args:?}: type range in {e}");
        }
    }
}

#[test]
fn directories_where_files_are_expected_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--vdd", "0.9", "--hw", "hw_configs"],
            "--hw hw_configs is a directory, expected a hardware config (.toml) file",
        ),
        (
            &["run", "--vdd", "0.9", "--model", "models"],
            "--model models is a directory, expected a model manifest (.toml) file",
        ),
        (
            &["eval", "--model", "models/"],
            "--model models/ is a directory, expected a model manifest (.toml) file",
        ),
        (
            &["model", "show", "models"],
            "model show models is a directory, expected a model manifest (.toml) file",
        ),
        (
            &["run", "--vdd", "0.9", "--profile", "sram_profiles"],
            "--profile sram_profiles is a directory, expected an SRAM profile",
        ),
        (
            &["sweep", "--profiles", "chip1,sram_profiles"],
            "--profiles sram_profiles is a directory, expected an SRAM profile",
        ),
        (
            &["sweep", "--models", "models"],
            "--models models is a directory, expected a model manifest",
        ),
        (
            &["cycles", "--topology", "hw_configs/topologies"],
            "--topology hw_configs/topologies is a directory, expected a topology (.csv) file",
        ),
        (
            &["profile", "stats", "sram_profiles"],
            "SRAM profile `sram_profiles` is a directory",
        ),
        (
            &[
                "quantize", "--bits", "8", "--scheme", "rquant", "--input", d, "--codes", "c.npy",
            ],
            "is a directory, expected a float32 .npy file",
        ),
        (
            &[
                "inject", "--input", d, "--bits", "8", "--p", "0.1", "--seed", "1", "--output",
                "o.npy",
            ],
            "is a directory, expected a .npy file of integer codes",
        ),
        (
            &[
                "inject", "--input", "x.npy", "--bits", "8", "--replay", d, "--output", "o.npy",
            ],
            "is a directory, expected a fault-pattern (.safetensors) file",
        ),
        (
            &["run", "--vdd", "0.9", "--data", "Cargo.toml"],
            "--data Cargo.toml is a file, expected the folder holding the test split",
        ),
    ];
    for (args, needle) in cases {
        let e = user_error(args, &[needle]);
        assert!(!e.contains("not found") && !e.contains("os error"), "{e}");
    }
}

#[test]
fn unknown_names_list_what_is_shipped() {
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["model", "show", "nope"],
            &[
                "model show nope not found",
                "models/",
                "shipped: ",
                "fmnist-cnn-randbet-8b",
            ],
        ),
        (
            &["eval", "--model", "nope"],
            &["--model nope not found", "fmnist-cnn-rquant-8b"],
        ),
        (
            &["run", "--vdd", "0.9", "--hw", "nope"],
            &["--hw nope not found", "hw_configs/", "shipped: 14nm_sram"],
        ),
        (
            &["run", "--vdd", "0.9", "--profile", "chip9"],
            &[
                "--profile chip9 not found",
                "sram_profiles/",
                "shipped: chip1, chip2, chip3",
            ],
        ),
        (
            &["sweep", "--models", "fmnist-cnn-randbet-8b,nope"],
            &["--models nope not found"],
        ),
        (
            &["sweep", "--profiles", "uniform,nope"],
            &["--profiles nope not found", "chip1"],
        ),
        (
            &["cycles", "--topology", "nope"],
            &[
                "--topology nope not found",
                "hw_configs/topologies/",
                "resnet20",
            ],
        ),
        (
            &["cycles", "--topology", "no/such.csv"],
            &["--topology no/such.csv not found (searched no/such.csv"],
        ),
        (
            &["run", "--vdd", "0.9", "--model", ""],
            &["--model : empty name"],
        ),
    ];
    for (args, needles) in cases {
        user_error(args, needles);
    }
}

/// A folder holding a local copy of every kind of shipped file, under the shipped names, the model edited.
fn shadowing_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manifest =
        std::fs::read_to_string(repo().join("models/fmnist-cnn-randbet-8b.toml")).unwrap();
    let edited = manifest.replacen(
        "name = \"fmnist-cnn-randbet-8b\"",
        "name = \"my-edited-copy\"",
        1,
    );
    assert_ne!(edited, manifest);
    std::fs::write(d.join("fmnist-cnn-randbet-8b.toml"), edited).unwrap();
    std::fs::copy(
        repo().join("models/fmnist-cnn-randbet-8b.safetensors"),
        d.join("fmnist-cnn-randbet-8b.safetensors"),
    )
    .unwrap();
    for (from, to) in [
        ("hw_configs/14nm_sram.toml", "14nm_sram.toml"),
        ("sram_profiles/chip1.sramprof.gz", "chip1.sramprof.gz"),
        ("hw_configs/topologies/resnet20.csv", "resnet20.csv"),
    ] {
        std::fs::copy(repo().join(from), d.join(to)).unwrap();
    }
    dir
}

#[test]
fn a_local_file_named_like_a_shipped_one_is_ambiguous() {
    let dir = shadowing_folder();
    let d = dir.path();
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["model", "show", "fmnist-cnn-randbet-8b.toml"],
            "model show",
            "models/fmnist-cnn-randbet-8b.toml",
        ),
        (
            &["eval", "--model", "fmnist-cnn-randbet-8b.toml"],
            "--model",
            "models/fmnist-cnn-randbet-8b.toml",
        ),
        (
            &[
                "run",
                "--vdd",
                "0.9",
                "--model",
                "fmnist-cnn-randbet-8b.toml",
            ],
            "--model",
            "models/fmnist-cnn-randbet-8b.toml",
        ),
        (
            &["sweep", "--models", "fmnist-cnn-randbet-8b.toml"],
            "--models",
            "models/fmnist-cnn-randbet-8b.toml",
        ),
        (
            &["run", "--vdd", "0.9", "--hw", "14nm_sram.toml"],
            "--hw",
            "hw_configs/14nm_sram.toml",
        ),
        (
            &["sweep", "--hw", "14nm_sram.toml"],
            "--hw",
            "hw_configs/14nm_sram.toml",
        ),
        (
            &["cycles", "--topology", "resnet20.csv"],
            "--topology",
            "hw_configs/topologies/resnet20.csv",
        ),
        (
            &[
                "cycles",
                "--topology",
                "fmnist_cnn.csv",
                "--hw",
                "14nm_sram.toml",
            ],
            "--hw",
            "hw_configs/14nm_sram.toml",
        ),
        (
            &["run", "--vdd", "0.9", "--profile", "chip1.sramprof.gz"],
            "--profile",
            "sram_profiles/chip1.sramprof.gz",
        ),
        (
            &["sweep", "--profiles", "chip1.sramprof.gz"],
            "--profiles",
            "sram_profiles/chip1.sramprof.gz",
        ),
        (
            &["profile", "stats", "chip1.sramprof.gz"],
            "SRAM profile",
            "sram_profiles/chip1.sramprof.gz",
        ),
    ];
    for (args, flag, shipped) in cases {
        let e = user_error_in(d, args, &[flag, "is ambiguous", shipped]);
        let local = args.iter().rev().find(|a| a.contains('.')).unwrap();
        assert!(e.contains(&format!("./{local}")), "{e}");
    }
    // Either is picked by writing it as a path.
    let show = |args: &[&str]| {
        let o = run_in(d, args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    assert!(show(&["model", "show", "./fmnist-cnn-randbet-8b.toml"]).contains("my-edited-copy"));
    let shipped = repo().join("models/fmnist-cnn-randbet-8b.toml");
    let out = show(&["model", "show", shipped.to_str().unwrap()]);
    assert!(out.contains("model       fmnist-cnn-randbet-8b ("), "{out}");
    // Without the extension the name only matches the shipped file (the local file is `NAME.toml`).
    assert!(show(&["model", "show", "fmnist-cnn-randbet-8b"])
        .contains("model       fmnist-cnn-randbet-8b ("));
    // A local file that no shipped one shadows is found by its bare name.
    std::fs::rename(d.join("fmnist-cnn-randbet-8b.toml"), d.join("mine.toml")).unwrap();
    let mine = std::fs::read_to_string(d.join("mine.toml")).unwrap();
    std::fs::write(d.join("mine.toml"), mine).unwrap();
    assert!(show(&["model", "show", "mine.toml"]).contains("my-edited-copy"));
    assert!(show(&["cycles", "--topology", "./resnet20.csv"]).contains("latency"));
}

#[test]
fn the_shipped_folders_are_found_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_in(
        dir.path(),
        &["cycles", "--topology", "fmnist_cnn", "--hw", "14nm_sram"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run_in(dir.path(), &["model", "show", "fmnist-cnn-randbet-4b"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run_in(
        dir.path(),
        &["profile", "stats", "chip2", "--vdd-rel", "0.9"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A relative path that does not exist here is also tried in the source tree.
    let o = run_in(
        dir.path(),
        &[
            "cycles",
            "--topology",
            "hw_configs/topologies/fmnist_cnn.csv",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn control_characters_in_names_stay_on_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let e = user_error_in(
        d,
        &["run", "--vdd", "0.9", "--model", "a\nb"],
        &["--model a\\nb not found"],
    );
    assert!(!e.contains('\n') || e.ends_with('\n'));
    user_error_in(
        d,
        &["run", "--vdd", "0.9", "--hw", "x\u{1b}[2Jy"],
        &["--hw x\\u{1b}[2Jy not found"],
    );
    user_error_in(
        d,
        &["run", "--vdd", "1\r\n2"],
        &["--vdd 1\\r\\n2 is not a number"],
    );
    user_error_in(
        d,
        &["cycles", "--topology", "t\tab\n.csv"],
        &["--topology t\\tab\\n.csv not found"],
    );
    user_error_in(
        d,
        &["run", "--offsets\n", "3"],
        &["unexpected argument '--offsets\\n'"],
    );
    // A file whose name holds a newline: the reader's message echoes the escaped name.
    let name = "bad\nname.sramprof";
    std::fs::write(d.join(name), "not a profile\n").unwrap();
    user_error_in(
        d,
        &["profile", "stats", &format!("./{name}")],
        &["./bad\\nname.sramprof"],
    );
}

#[test]
fn profile_errors_name_the_profile_file_and_the_hardware_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two small profiles with the same header name (the style) but different files and geometries.
    for (file, rows, floor) in [
        ("rows.sramprof", "256", "0.9"),
        ("other.sramprof", "512", "0.9"),
    ] {
        let o = run_in(
            d,
            &[
                "profile", "generate", "--style", "chip1", "--arrays", "2", "--rows", rows,
                "--seed", "1", "--floor", floor, "--out", file,
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let e = user_error_in(
        d,
        &["profile", "stats", "./other.sramprof", "--vdd-rel", "0.8"],
        &["./other.sramprof: vdd_rel = 0.8 is out of range; allowed 0.9..=2"],
    );
    assert!(!e.contains("chip1"), "{e}");
    for args in [
        &["run", "--vdd", "0.95", "--profile", "./rows.sramprof"][..],
        &["sweep", "--profiles", "./rows.sramprof", "--out", "out"][..],
        &[
            "profile",
            "pattern",
            "./rows.sramprof",
            "--bits",
            "8",
            "--elements",
            "10",
            "--vdd-rel",
            "0.95",
            "--out",
            "x.st",
        ][..],
    ] {
        user_error_in(
            d,
            args,
            &[
                "profile ./rows.sramprof has arrays of 256x64 cells",
                "hardware config ",
                "hw_configs/14nm_sram.toml",
                "512x64",
            ],
        );
    }
    // The config's own default profile: the lookup failure names the config file and its key.
    let cfg = std::fs::read_to_string(repo().join("hw_configs/14nm_sram.toml")).unwrap();
    std::fs::write(
        d.join("hw.toml"),
        replace_line(
            &cfg,
            "fault_profile = \"chip1\"",
            "fault_profile = \"chip9\"",
        ),
    )
    .unwrap();
    user_error_in(
        d,
        &["run", "--vdd", "0.95", "--hw", "./hw.toml"],
        &[
            "./hw.toml: fault_profile = chip9 not found",
            "shipped: chip1",
        ],
    );
}

#[test]
fn help_has_no_doubled_defaults_no_debug_names_and_no_key_wording() {
    for sub in [
        &["run"][..],
        &["sweep"],
        &["eval"],
        &["cycles"],
        &["quantize"],
        &["inject"],
        &["model", "show"],
        &["profile", "generate"],
        &["profile", "stats"],
        &["profile", "show"],
        &["profile", "pattern"],
    ] {
        let o = bin_in(repo()).args(sub).arg("--help").output().unwrap();
        assert!(o.status.success());
        let help = String::from_utf8(o.stdout).unwrap();
        assert!(
            !help.contains("] [default:"),
            "{sub:?}: doubled default in {help}"
        );
        for debug in ["FashionMnist", "WeightSram", "Cifar10", "Some(", "None"] {
            assert!(!help.contains(debug), "{sub:?}: `{debug}` in {help}");
        }
    }
    let o = bin_in(repo())
        .args(["profile", "generate", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(o.stdout).unwrap();
    for flag in ["--seed <S>", "--rows <N>", "--columns <N>"] {
        let line = help.lines().find(|l| l.contains(flag)).unwrap();
        let text = line.split_once(flag).unwrap().1.trim();
        assert!(text.len() > 10, "{flag} has no help: {line}");
    }
}

#[test]
fn messages_use_the_users_spelling() {
    // --skip past the end of the split names the data set as the user writes it.
    let e = user_error(
        &["run", "--vdd", "0.9", "--skip", "20000", "--limit", "5"],
        &["--skip 20000", "fashion-mnist"],
    );
    assert!(!e.contains("FashionMnist"), "{e}");
    // A duplicated rail in the config is listed with its config spelling.
    let dir = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(repo().join("hw_configs/14nm_sram.toml")).unwrap();
    let cfg = replace_line(
        &cfg,
        "scaled_rails",
        "scaled_rails = [\"weight_sram\", \"weight_sram\"]",
    );
    let path: PathBuf = dir.path().join("rails.toml");
    std::fs::write(&path, cfg).unwrap();
    let e = user_error(
        &[
            "cycles",
            "--topology",
            "resnet20",
            "--hw",
            path.to_str().unwrap(),
        ],
        &["rails.toml", "scaled_rails", "weight_sram"],
    );
    assert!(!e.contains("WeightSram"), "{e}");
}

/// `text` with its (single) line starting with `key` replaced by `line`.
fn replace_line(text: &str, key: &str, line: &str) -> String {
    assert_eq!(
        text.lines().filter(|l| l.starts_with(key)).count(),
        1,
        "{key}"
    );
    text.lines()
        .map(|l| if l.starts_with(key) { line } else { l })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
