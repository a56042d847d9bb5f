//! ONNX import on the committed fixtures (tests/data/onnx/, made by training/scripts/make_onnx_fixtures.py):
//! every good fixture imports, loads, and its float network reproduces onnxruntime's outputs on the stored
//! input; importing twice gives identical bytes; every refusal fixture fails with its one-line message and exit
//! code 2.
use std::path::{Path, PathBuf};
use std::process::Command;

use accelsim::engine::Network;
use accelsim::model::{LayerKind, Model};
use accelsim::onnx::{import_file, write_model, ImportOptions};
use accelsim::quant::QuantConfig;
use ndarray::Array4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/onnx")
        .join(name)
}

fn opts(name: &str) -> ImportOptions {
    ImportOptions {
        name: name.into(),
        // The flat-input fixture needs the image shape; the others ignore it.
        dataset: (name == "flat_input").then_some(accelsim::data::DatasetKind::Mnist),
        mean: vec![],
        std: vec![],
        quant: QuantConfig::rquant(8),
    }
}

/// Imports `NAME.onnx` into `dir`, loads it and returns the model.
fn import(dir: &Path, name: &str) -> Model {
    let imported = import_file(&fixture(&format!("{name}.onnx")), name, &opts(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let manifest = write_model(&dir.join(name), &imported).unwrap();
    Model::load(&manifest).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn npy(path: &Path) -> (Vec<f32>, Vec<usize>) {
    accelsim::npy::read_f32(path).unwrap()
}

/// max |a - b| / (1 + |b|) over all elements.
fn max_rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
        .fold(0.0, f32::max)
}

fn logits(model: &Model, name: &str, float: bool) -> (Vec<f32>, Vec<f32>) {
    let (x, shape) = npy(&fixture(&format!("{name}.input.npy")));
    let (want, wshape) = npy(&fixture(&format!("{name}.expected.npy")));
    let [c, h, w] = model.manifest().input.shape;
    assert_eq!(shape.iter().product::<usize>(), shape[0] * c * h * w);
    let x = Array4::from_shape_vec((shape[0], c, h, w), x).unwrap();
    let net = if float {
        Network::from_model_float(model)
    } else {
        Network::from_model(model)
    };
    let y = net.forward(x.view());
    assert_eq!(y.shape(), &wshape[..], "{name}: output shape");
    (y.iter().copied().collect(), want)
}

const GOOD: [&str; 6] = [
    "cnn_bn",
    "mobile_block",
    "res_group",
    "ext_ops",
    "more_ops",
    "flat_input",
];

#[test]
fn good_fixtures_match_onnxruntime_in_float() {
    let d = tempfile::tempdir().unwrap();
    for name in GOOD {
        let model = import(d.path(), name);
        let (got, want) = logits(&model, name, true);
        let err = max_rel_err(&got, &want);
        eprintln!(
            "{name}: max relative error vs onnxruntime {err:.2e} (float), {:.2e} (8-bit)",
            max_rel_err(&logits(&model, name, false).0, &want)
        );
        assert!(
            err < 1e-4,
            "{name}: float logits differ from onnxruntime by {err}"
        );
        // 8-bit RQuant stays close to the float network (a sanity bound, not an accuracy claim).
        let (q, _) = logits(&model, name, false);
        let qerr = max_rel_err(&q, &want);
        assert!(qerr < 0.1, "{name}: 8-bit logits differ by {qerr}");
    }
}

#[test]
fn imports_are_byte_reproducible() {
    for name in GOOD {
        let a = import_file(&fixture(&format!("{name}.onnx")), name, &opts(name)).unwrap();
        let b = import_file(&fixture(&format!("{name}.onnx")), name, &opts(name)).unwrap();
        assert_eq!(a.manifest, b.manifest, "{name}");
        assert_eq!(a.safetensors, b.safetensors, "{name}");
    }
}

#[test]
fn operators_map_onto_the_expected_layers() {
    let d = tempfile::tempdir().unwrap();
    let kinds = |m: &Model| -> Vec<&'static str> {
        m.manifest()
            .layers
            .iter()
            .map(|l| l.kind.type_name())
            .collect()
    };
    // BatchNorm2d folds into the convolutions, BatchNorm1d into the linear layer; the view(N, -1) shape chain
    // folds away; Dropout disappears.
    let m = import(d.path(), "cnn_bn");
    assert_eq!(
        kinds(&m),
        [
            "conv2d",
            "relu",
            "maxpool2d",
            "conv2d",
            "clip",
            "avgpool2d",
            "reshape",
            "linear",
            "relu",
            "linear"
        ]
    );
    let m = import(d.path(), "mobile_block");
    let convs: Vec<(usize, [usize; 2])> = m
        .manifest()
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::Conv2d {
                groups, dilation, ..
            } => Some((*groups, *dilation)),
            _ => None,
        })
        .collect();
    assert_eq!(convs, [(1, [1, 1]), (4, [1, 1]), (1, [1, 1]), (2, [2, 2])]);
    for t in [
        "hard_swish",
        "hard_sigmoid",
        "leaky_relu",
        "sigmoid",
        "add",
        "softmax",
    ] {
        assert!(kinds(&m).contains(&t), "mobile_block lacks {t}");
    }
    assert_eq!(kinds(&m).last(), Some(&"softmax"));
    // GroupNorm's InstanceNormalization pattern becomes one groupnorm layer; MatMul + Add one linear layer.
    let m = import(d.path(), "res_group");
    let k = kinds(&m);
    assert_eq!(k.iter().filter(|t| **t == "groupnorm").count(), 1);
    assert!(!k.contains(&"channel_add") || k.contains(&"concat"));
    assert!(k.contains(&"concat") && k.contains(&"channel_mul"));
    assert_eq!(k.last(), Some(&"linear"));
    assert!(matches!(
        &m.manifest().layers.last().unwrap().kind,
        LayerKind::Linear { bias: Some(_), .. }
    ));
    let m = import(d.path(), "ext_ops");
    assert_eq!(
        kinds(&m),
        [
            "conv2d",
            "groupnorm",
            "clip",
            "maxpool2d",
            "avgpool2d",
            "reshape",
            "linear"
        ]
    );
    let pads: Vec<[usize; 4]> = m
        .manifest()
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::Conv2d { padding, .. } | LayerKind::MaxPool2d { padding, .. } => {
                Some(*padding)
            }
            _ => None,
        })
        .collect();
    // SAME_UPPER puts the odd padding after, SAME_LOWER before.
    assert_eq!(pads, [[0, 0, 1, 1], [1, 1, 0, 0]]);
    // A BatchNormalization after a Relu cannot fold and stays; InstanceNormalization and GroupNormalization-18
    // (per-group scale) are group norms; the MatMul weight is folded from Slice/Sqrt/Neg/Reciprocal/Mul/Reshape.
    let m = import(d.path(), "more_ops");
    assert_eq!(
        kinds(&m),
        [
            "relu",
            "batchnorm",
            "groupnorm",
            "groupnorm",
            "maxpool2d",
            "reshape",
            "linear"
        ]
    );
    let groups: Vec<usize> = m
        .manifest()
        .layers
        .iter()
        .filter_map(|l| match &l.kind {
            LayerKind::GroupNorm { groups, .. } => Some(*groups),
            _ => None,
        })
        .collect();
    assert_eq!(groups, [4, 2]);
    // A flat [N, 784] graph input gets the dataset's image shape and a zero-copy reshape.
    let m = import(d.path(), "flat_input");
    assert_eq!(m.manifest().input.shape, [1, 28, 28]);
    assert_eq!(kinds(&m), ["reshape", "linear"]);
}

/// (fixture, substrings its error must contain).
const REFUSALS: [(&str, &[&str]); 12] = [
    ("flat_input", &["[N, 784]", "--dataset"]),
    (
        "bad_unsupported_op",
        &["node \"erf_node\"", "Erf", "opset 17", "docs/onnx.md"],
    ),
    ("bad_opset", &["opset 9", "13..=21"]),
    ("bad_dynamic_hw", &["dimension 2 is dynamic"]),
    (
        "bad_size_mismatch",
        &["tensor \"fc.w\"", "needs 256 bytes", "holds 12"],
    ),
    ("bad_huge_dims", &["tensor \"fc.w\"", "more than"]),
    (
        "bad_ceil_mode",
        &["node \"pool_ceil\"", "MaxPool", "ceil_mode"],
    ),
    (
        "bad_mul_activations",
        &["node \"mul_acts\"", "Mul of two activations"],
    ),
    (
        "bad_qdq",
        &[
            "node \"flatten_q\"",
            "integer output of a QuantizeLinear",
            "QLinearConv",
        ],
    ),
    ("bad_external_escape", &["inside the model's folder"]),
    ("bad_softmax_not_last", &["Softmax", "last"]),
    ("bad_truncated", &["not a valid ONNX model"]),
];

#[test]
fn refusals_are_one_line_errors_naming_the_problem() {
    for (name, needles) in REFUSALS {
        let path = fixture(&format!("{name}.onnx"));
        let o = ImportOptions {
            dataset: None,
            ..opts(name)
        };
        let e = import_file(&path, name, &o).expect_err(name).to_string();
        assert!(!e.contains('\n'), "{name}: multi-line error {e:?}");
        assert!(e.contains(&*path.display().to_string()), "{name}: {e}");
        for n in needles {
            assert!(e.contains(n), "{name}: {e:?} lacks {n:?}");
        }
    }
}

#[test]
fn cli_import_exits_2_on_refusals_and_writes_a_loadable_model() {
    let bin = env!("CARGO_BIN_EXE_accelsim");
    let d = tempfile::tempdir().unwrap();
    let out = Command::new(bin)
        .arg("import")
        .arg(fixture("bad_unsupported_op.onnx"))
        .arg("--out")
        .arg(d.path().join("x"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!d.path().join("x.toml").exists());
    let out = Command::new(bin)
        .arg("import")
        .arg(fixture("mobile_block.onnx"))
        .args(["--out"])
        .arg(d.path().join("mb"))
        .args(["--bits", "4", "--scheme", "normal", "--w-max", "0.5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = Model::load(d.path().join("mb.toml")).unwrap();
    assert_eq!(m.bits(), 4);
    assert_eq!(m.quant_config(), &QuantConfig::normal(4).with_w_max(0.5));
    for bad in [
        &["--bits", "9"][..],
        &["--scheme", "fancy"],
        &["--mean", "0.5"],
        &["--w-max", "-1"],
    ] {
        let out = Command::new(bin)
            .arg("import")
            .arg(fixture("mobile_block.onnx"))
            .arg("--out")
            .arg(d.path().join("bad"))
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// `cycles --model` maps each group of a grouped/depthwise convolution to its own GEMM: the MACs it reports are
/// the model's real MACs (not those of a dense convolution), layer by layer.
#[test]
fn cycles_from_the_model_maps_groups_separately() {
    let d = tempfile::tempdir().unwrap();
    let m = import(d.path(), "mobile_block");
    let out = Command::new(env!("CARGO_BIN_EXE_accelsim"))
        .args(["cycles", "--json", "--model"])
        .arg(m.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let g = m.graph();
    let mut want_rows = 0;
    let mut want_macs = 0u64;
    for (i, l) in m.manifest().layers.iter().enumerate() {
        match &l.kind {
            LayerKind::Conv2d {
                in_channels,
                out_channels,
                kernel,
                groups,
                ..
            } => {
                let accelsim::model::Shape::Chw(_, oh, ow) = g.shapes[i] else {
                    unreachable!()
                };
                want_rows += groups;
                want_macs +=
                    (oh * ow * out_channels * (in_channels / groups) * kernel[0] * kernel[1])
                        as u64;
            }
            LayerKind::Linear {
                in_features,
                out_features,
                ..
            } => {
                want_rows += 1;
                want_macs += (in_features * out_features) as u64;
            }
            _ => {}
        }
    }
    assert_eq!(rows.len(), want_rows);
    let macs: u64 = rows.iter().map(|r| r["macs"].as_u64().unwrap()).sum();
    assert_eq!(macs, want_macs);
    let names: Vec<&str> = rows.iter().map(|r| r["layer"].as_str().unwrap()).collect();
    assert_eq!(names.iter().filter(|n| n.contains("[g")).count(), 4 + 2);
}

/// A QDQ model (onnxruntime `quantize_static`, per channel; docs/onnx.md#qdq-models): the import keeps the
/// integer weights as the stored codes, each channel's step is exactly its ONNX scale (so a corrupted code
/// decodes as ONNX's `(q − z)·s` would), the activation parameters are in the manifest, and the int8 datapath
/// uses them instead of calibrating (an all-zero calibration batch changes nothing).
#[test]
fn qdq_import_keeps_integer_weights_and_activation_parameters() {
    use accelsim::engine::act_store::Reliable;
    use accelsim::engine::int8::{Int8Network, Int8Options};
    let d = tempfile::tempdir().unwrap();
    let o = ImportOptions {
        dataset: Some(accelsim::data::DatasetKind::FashionMnist),
        ..opts("qdq_cnn_pc")
    };
    let imported = import_file(&fixture("qdq_cnn_pc.onnx"), "qdq", &o).unwrap();
    let again = import_file(&fixture("qdq_cnn_pc.onnx"), "qdq", &o).unwrap();
    assert_eq!(imported.safetensors, again.safetensors);
    let model = Model::load(write_model(&d.path().join("qdq"), &imported).unwrap()).unwrap();
    let cfg = model.quant_config();
    assert!(cfg.signed && cfg.symmetric && cfg.bits == 8);
    assert_eq!(model.manifest().activation_quant.len(), 7);
    // onnxruntime removed the ReLUs (its uint8 zero point 0 clamps); the import makes them explicit again.
    let relus = model
        .manifest()
        .layers
        .iter()
        .filter(|l| matches!(l.kind, LayerKind::Relu))
        .count();
    assert_eq!(relus, 3);
    assert_eq!(model.manifest().activation_quant[0].value, "input");
    // Every weight code is a valid symmetric code, and one flipped bit decodes to code·step.
    let id = model
        .param_id("body.body.0.Conv.weight")
        .expect("conv weight");
    let qt = model.quantized(id);
    let step = qt.codecs()[0].delta();
    let mut image = model.memory_image().to_vec();
    let at = model.image_range(id).start;
    image[at] ^= 0x40;
    let mut out = vec![0.0; qt.len()];
    model.decode_param(id, &image, &mut out);
    let v = image[at] as i8 as f32;
    assert_eq!(out[0], (v * step).clamp(-127.0 * step, 127.0 * step));
    // Given parameters: calibration images do not matter.
    let x = Array4::<f32>::from_elem((8, 1, 28, 28), 0.5);
    let zeros = Array4::<f32>::zeros((4, 1, 28, 28));
    let a = Int8Network::build(&model, x.view(), Int8Options::default()).unwrap();
    let b = Int8Network::build(&model, zeros.view(), Int8Options::default()).unwrap();
    assert_eq!(a.input_qparams(), b.input_qparams());
    let q = &model.manifest().activation_quant[0];
    assert_eq!(a.input_qparams().scale, q.scale);
    let la = a.forward(x.view(), &Reliable, 0).unwrap();
    let lb = b.forward(x.view(), &Reliable, 0).unwrap();
    assert_eq!(la, lb);
}

#[test]
fn qdq_manifest_and_range_tensors_are_validated() {
    let d = tempfile::tempdir().unwrap();
    let o = ImportOptions {
        dataset: Some(accelsim::data::DatasetKind::FashionMnist),
        ..opts("qdq_cnn_pt")
    };
    let imported = import_file(&fixture("qdq_cnn_pt.onnx"), "qdq", &o).unwrap();
    let manifest = write_model(&d.path().join("qdq"), &imported).unwrap();
    let text = std::fs::read_to_string(&manifest).unwrap();
    for (from, to, needle) in [
        (
            "zero_point = 146",
            "zero_point = 300",
            "activation_quant[6].zero_point",
        ),
        (
            "value = \"input\"",
            "value = \"nope\"",
            "activation_quant[0].value",
        ),
        ("scale = 0.", "scale = -0.", "activation_quant[0].scale"),
    ] {
        assert!(text.contains(from), "{from}");
        std::fs::write(&manifest, text.replacen(from, to, 1)).unwrap();
        let e = Model::load(&manifest).unwrap_err().to_string();
        assert!(e.contains(needle) && !e.contains('\n'), "{e}");
    }
}
