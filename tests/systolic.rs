//! `accelsim cycles` driven like a user, checked against numbers computed by hand (docs/systolic.md formulas).
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_accelsim"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn cycles_json(args: &[&str]) -> Vec<serde_json::Value> {
    let out = bin()
        .arg("cycles")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const HEADER: &str =
    "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n";

/// A 4x4 IFMAP, 3x3 filters, 2 channels, 3 filters, stride 1: E = F = 2, so the GEMM is M = 4 output pixels,
/// N = 3 filters, K = 2·3·3 = 18, 216 MACs. On a 4x4 array (R = C = 4), by hand:
///
/// | df | S_R, S_C, T | folds | cycles/fold | cycles | weight rd | input rd | output wr | util % |
/// |---|---|---|---|---|---|---|---|---|
/// | ws | 18, 3, 4 | 5·1 | 2·4+4+4−2 = 14 | 70 | K·N = 54 | M·K·1 = 72 | M·N·5 = 60 | 216/(70·16) = 19.2857 |
/// | os | 4, 3, 18 | 1·1 | 4+4+18−2 = 24 | 24 | K·N·1 = 54 | M·K·1 = 72 | M·N = 12 | 216/(24·16) = 56.25 |
/// | is | 18, 4, 3 | 5·1 | 2·4+4+3−2 = 13 | 65 | K·N·1 = 54 | M·K = 72 | M·N·5 = 60 | 216/(65·16) = 20.7692 |
#[test]
fn small_conv_matches_hand_computation_for_every_dataflow() {
    let dir = tempfile::tempdir().unwrap();
    let conv = write(
        dir.path(),
        "conv.csv",
        &format!("{HEADER}c, 4, 4, 3, 3, 2, 3, 1,\n"),
    );
    let gemm = write(dir.path(), "gemm.csv", "Layer, M, N, K,\nc, 4, 3, 18,\n");
    let expected = [
        ("ws", 70u64, 54u64, 72u64, 60u64, 19.2857),
        ("os", 24, 54, 72, 12, 56.25),
        ("is", 65, 54, 72, 60, 20.7692),
    ];
    for (df, cycles, w_rd, i_rd, o_wr, util) in expected {
        for topo in [&conv, &gemm] {
            let rows = cycles_json(&[
                "--topology",
                topo.to_str().unwrap(),
                "--array",
                "4x4",
                "--dataflow",
                df,
            ]);
            assert_eq!(rows.len(), 1);
            let r = &rows[0];
            assert_eq!(r["layer"], "c");
            assert_eq!(r["macs"], 216, "{df}");
            assert_eq!(r["compute_cycles"], cycles, "{df}");
            assert_eq!(r["weight_sram_reads"], w_rd, "{df}");
            assert_eq!(r["input_sram_reads"], i_rd, "{df}");
            assert_eq!(r["output_sram_writes"], o_wr, "{df}");
            let u = r["utilization_pct"].as_f64().unwrap();
            assert!((u - util).abs() < 1e-3, "{df}: {u} vs {util}");
        }
    }
}

/// Stride 2 on a 6x6 IFMAP with 3x3 filters: PyTorch gives E = floor(3/2)+1 = 2 (M = 4); SCALE-Sim's
/// ceil((6-3+2)/2) = 3 (M = 9). 1 channel, 2 filters, K = 9. WS on 4x4: folds ⌈9/4⌉·⌈2/4⌉ = 3, so
/// cycles = 3·(8+4+M−2) = 42 (M = 4) or 57 (M = 9).
#[test]
fn strided_output_size_and_scalesim_rounding() {
    let dir = tempfile::tempdir().unwrap();
    let t = write(
        dir.path(),
        "s.csv",
        &format!("{HEADER}s, 6, 6, 3, 3, 1, 2, 2,\n"),
    );
    let args = [
        "--topology",
        t.to_str().unwrap(),
        "--array",
        "4x4",
        "--dataflow",
        "ws",
    ];
    let floor = cycles_json(&args);
    assert_eq!(
        (floor[0]["m"].as_u64(), floor[0]["compute_cycles"].as_u64()),
        (Some(4), Some(42))
    );
    let mut a = args.to_vec();
    a.push("--scalesim-ofmap");
    let ceil = cycles_json(&a);
    assert_eq!(
        (ceil[0]["m"].as_u64(), ceil[0]["compute_cycles"].as_u64()),
        (Some(9), Some(57))
    );
}

/// The shipped ResNet-20 topology: 19 convolutions + 1 linear layer, 40,551,040 MACs by hand
/// (conv1 1024·16·27 + 6·1024·16·144 + 256·32·144 + 5·256·32·288 + 64·64·288 + 5·64·64·576 + 64·10).
#[test]
fn resnet20_runs_at_three_dataflows() {
    for df in ["ws", "os", "is"] {
        let rows = cycles_json(&[
            "--topology",
            "hw_configs/topologies/resnet20.csv",
            "--dataflow",
            df,
        ]);
        assert_eq!(rows.len(), 20);
        let macs: u64 = rows.iter().map(|r| r["macs"].as_u64().unwrap()).sum();
        assert_eq!(macs, 40_551_040);
        for r in &rows {
            let u = r["utilization_pct"].as_f64().unwrap();
            assert!(u > 0.0 && u <= 100.0);
        }
    }
    // Text and CSV outputs too.
    let out = bin()
        .args([
            "cycles",
            "--topology",
            "hw_configs/topologies/fmnist_cnn.csv",
            "--csv",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("layer,m,n,k,macs,compute_cycles"));
    assert_eq!(text.lines().count(), 5);
    // --vdd adds the energy breakdown; at the nominal voltage nothing is saved.
    let energy = |vdd: &str| {
        let out = bin()
            .args([
                "cycles",
                "--topology",
                "hw_configs/topologies/fmnist_cnn.csv",
                "--vdd",
                vdd,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(energy("1.15").contains("savings vs nominal: total 0.00 %, weight SRAM 0.00 %"));
    let low = energy("0.85");
    assert!(
        low.contains("weight_sram_dynamic") && !low.contains("total 0.00 %"),
        "{low}"
    );
}

#[test]
fn user_errors_are_one_line_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.csv",
        &format!("{HEADER}c, 4, 4, 5, 5, 1, 1, 1,\n"),
    );
    let cases: Vec<Vec<String>> = vec![
        vec!["--topology".into(), bad.display().to_string()],
        vec!["--topology".into(), "no/such/file.csv".into()],
        vec![
            "--topology".into(),
            "hw_configs/topologies/fmnist_cnn.csv".into(),
            "--array".into(),
            "0x4".into(),
        ],
        vec![
            "--topology".into(),
            "hw_configs/topologies/fmnist_cnn.csv".into(),
            "--dataflow".into(),
            "rs".into(),
        ],
        vec![
            "--topology".into(),
            "hw_configs/topologies/fmnist_cnn.csv".into(),
            "--hw".into(),
            "no_such_hw".into(),
        ],
        vec![
            "--topology".into(),
            "hw_configs/topologies/fmnist_cnn.csv".into(),
            "--vdd".into(),
            "0.1".into(),
        ],
    ];
    for args in cases {
        let out = bin().arg("cycles").args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.starts_with("error: ") && err.trim_end().lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    // An out-of-range [systolic] key names the file, the key and the allowed range.
    let good = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("hw_configs/14nm_sram.toml"),
    )
    .unwrap();
    let (head, tail) = good.split_once("[systolic]").unwrap();
    let broken = format!(
        "{head}[systolic]{}",
        tail.replacen("rows = 16", "rows = 0", 1)
    );
    let cfg = write(dir.path(), "broken.toml", &broken);
    let out = bin()
        .args([
            "cycles",
            "--topology",
            "hw_configs/topologies/fmnist_cnn.csv",
            "--hw",
        ])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("broken.toml")
            && err.contains("[systolic] rows = 0")
            && err.contains("1..=65536"),
        "{err}"
    );
}

/// Cross-check against SCALE-Sim v3.0.0 (PyPI `scalesim`, run once by hand on `hw_configs/topologies/fmnist_cnn.csv`
/// with a 16x16 array, 4 MiB buffers and 1000 words/cycle so that it never stalls; values copied from its
/// COMPUTE_REPORT.csv / DETAILED_ACCESS_REPORT.csv). Conventions, see docs/systolic.md: SCALE-Sim's "Total Cycles"
/// is the index of the last cycle (ours counts cycles, so ours = its + 1), and its `os` OFMAP writes add
/// `R + C` per fold.
#[test]
fn matches_scalesim_v3_on_the_fmnist_cnn() {
    // (dataflow, [(total cycles, ifmap reads, filter reads, ofmap writes); 4 layers]) as SCALE-Sim printed them.
    type Counts = (u64, u64, u64, u64);
    let reference: [(&str, [Counts; 4]); 3] = [
        (
            "ws",
            [
                (829, 7056, 144, 12544),
                (4355, 56448, 4608, 56448),
                (18423, 6272, 100352, 6272),
                (187, 64, 640, 40),
            ],
        ),
        (
            "os",
            [
                (1910, 7056, 7056, 14112),
                (4523, 56448, 59904, 7104),
                (6391, 6272, 100352, 192),
                (93, 64, 640, 42),
            ],
        ),
        (
            "is",
            [
                (3037, 7056, 7056, 12544),
                (9125, 28224, 59904, 56448),
                (10779, 1568, 100352, 6272),
                (223, 64, 640, 40),
            ],
        ),
    ];
    for (df, layers) in reference {
        let rows = cycles_json(&[
            "--topology",
            "hw_configs/topologies/fmnist_cnn.csv",
            "--array",
            "16x16",
            "--dataflow",
            df,
            "--scalesim-ofmap",
        ]);
        for (r, (cycles, ifmap, filter, ofmap)) in rows.iter().zip(layers) {
            let folds = r["row_folds"].as_u64().unwrap() * r["col_folds"].as_u64().unwrap();
            let os_quirk = if df == "os" { folds * (16 + 16) } else { 0 };
            assert_eq!(
                r["compute_cycles"].as_u64(),
                Some(cycles + 1),
                "{df} {}",
                r["layer"]
            );
            assert_eq!(
                r["input_sram_reads"].as_u64(),
                Some(ifmap),
                "{df} {}",
                r["layer"]
            );
            assert_eq!(
                r["weight_sram_reads"].as_u64(),
                Some(filter),
                "{df} {}",
                r["layer"]
            );
            assert_eq!(
                r["output_sram_writes"].as_u64().unwrap() + os_quirk,
                ofmap,
                "{df} {}",
                r["layer"]
            );
        }
    }
}

/// DRAM carries the image, not its zero padding (docs/energy.md, "DRAM traffic"): the first conv of the shipped
/// Fashion-MNIST CNN reads 28·28 = 784 bytes from DRAM, not the padded 30·30 = 900, while its IFMAP-buffer reads
/// still stream the padded map (SCALE-Sim's convention). A topology CSV gives sizes with padding included and
/// no padding amount, so there the given size is what DRAM carries.
#[test]
fn dram_reads_the_unpadded_image() {
    use accelsim::config::HwConfig;
    use accelsim::systolic::{
        simulate_layer, simulate_network, BufferParams, Layer, OfmapRounding,
    };
    let hw = HwConfig::load_named("14nm_sram").unwrap();
    let array = hw.systolic.array_params().unwrap();
    let buffers = BufferParams::from_hw(&hw).unwrap();
    let conv = Layer::conv2d("conv1", 1, 1, 28, 28, 16, 3, 3, 1, 1).unwrap();
    let s = simulate_layer(&conv, &array, &buffers, 8).unwrap();
    assert_eq!(s.dram_reads_bytes, 784);
    assert_eq!(s.dram_writes_bytes, 28 * 28 * 16);
    assert_eq!(s.input_sram_reads, 28 * 28 * 9); // M·K over the padded map, one pass (16 filters ≤ 16 cols)
    let padded =
        Layer::scalesim_conv("conv1", 30, 30, 3, 3, 1, 16, 1, 1, OfmapRounding::Floor).unwrap();
    assert_eq!(
        simulate_layer(&padded, &array, &buffers, 8)
            .unwrap()
            .dram_reads_bytes,
        900
    );
    let with_pad = padded.with_zero_padding(1, 1).unwrap();
    assert_eq!(simulate_layer(&with_pad, &array, &buffers, 8).unwrap(), s);
    assert!(
        Layer::scalesim_conv("c", 3, 3, 3, 3, 1, 1, 1, 1, OfmapRounding::Floor)
            .unwrap()
            .with_zero_padding(2, 0)
            .is_err()
    );
    // The shipped model, as `run` and `sweep` map it: the network reads exactly the 784-byte image from DRAM
    // (weights are resident, intermediate maps stay on chip) and writes the 10 logits.
    let model = accelsim::model::Model::load(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/models/fmnist-cnn-clipping-8b.toml"
    ))
    .unwrap();
    let layers = accelsim::sweep::scenario::systolic_layers(&model).unwrap();
    let net = simulate_network(&layers, &array, &buffers, 8).unwrap();
    assert_eq!(net.dram_reads_bytes, 784);
    assert_eq!(net.dram_writes_bytes, 10);
}
