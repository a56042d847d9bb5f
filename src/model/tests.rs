use super::*;

/// A small CNN manifest: conv(1->2, 3x3, pad 1) + GN + relu + maxpool + flatten + linear(2*2*2 -> 3).
pub(crate) const SMALL_TOML: &str = r#"
format = "accelsim-model"
version = 1
name = "small"
weights = "small.safetensors"

[input]
shape = [1, 4, 4]
mean = [0.5]
std = [0.25]
dataset = "mnist"
classes = ["a", "b", "c"]

[quantization]
bits = 8
granularity = "layer"
symmetric = false
signed = false
rounding = true
w_max = 0.5

[training]
method = "clipping"
p_train = 0.0
clean_error_pct = 12.5

[[layers]]
name = "conv1"
type = "conv2d"
in_channels = 1
out_channels = 2
kernel = [3, 3]
padding = [1, 1]
weight = "conv1.weight"
bias = "conv1.bias"

[[layers]]
name = "gn1"
type = "groupnorm"
groups = 1
channels = 2
weight = "gn1.weight"
bias = "gn1.bias"

[[layers]]
name = "relu1"
type = "relu"

[[layers]]
name = "pool1"
type = "maxpool2d"
kernel = [2, 2]

[[layers]]
name = "flat"
type = "flatten"

[[layers]]
name = "fc"
type = "linear"
in_features = 8
out_features = 3
weight = "fc.weight"
bias = "fc.bias"
"#;

/// Deterministic pseudo-random values in [-0.4, 0.4].
pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let x = (i as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(seed.wrapping_mul(40503))
                >> 8;
            (x % 1000) as f32 / 1000.0 * 0.8 - 0.4
        })
        .collect()
}

pub(crate) fn small_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    vec![
        ("conv1.weight".into(), vec![2, 1, 3, 3], values(18, 1)),
        ("conv1.bias".into(), vec![2], values(2, 2)),
        ("gn1.weight".into(), vec![2], values(2, 3)),
        ("gn1.bias".into(), vec![2], values(2, 4)),
        ("fc.weight".into(), vec![3, 8], values(24, 5)),
        ("fc.bias".into(), vec![3], values(3, 6)),
    ]
}

/// Writes `stem.toml` and `stem.safetensors` into `dir`, returns the manifest path.
pub(crate) fn write_model(
    dir: &Path,
    stem: &str,
    toml: &str,
    tensors: &[(String, Vec<usize>, Vec<f32>)],
) -> PathBuf {
    let toml = toml.replace("small.safetensors", &format!("{stem}.safetensors"));
    let mp = dir.join(format!("{stem}.toml"));
    std::fs::write(&mp, toml).unwrap();
    let refs: Vec<(&str, &[usize], &[f32])> = tensors
        .iter()
        .map(|(n, s, v)| (n.as_str(), s.as_slice(), v.as_slice()))
        .collect();
    write_f32_safetensors(&dir.join(format!("{stem}.safetensors")), &refs).unwrap();
    mp
}

fn load_err(toml: &str, tensors: &[(String, Vec<usize>, Vec<f32>)]) -> String {
    let d = tempfile::tempdir().unwrap();
    let p = write_model(d.path(), "m", toml, tensors);
    Model::load(&p).unwrap_err().to_string()
}

#[test]
fn loads_small_model_in_memory_order() {
    let d = tempfile::tempdir().unwrap();
    let p = write_model(d.path(), "small", SMALL_TOML, &small_tensors());
    let m = Model::load(&p).unwrap();
    let names: Vec<&str> = m.param_tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "gn1.weight",
            "gn1.bias",
            "fc.weight",
            "fc.bias"
        ]
    );
    let offs: Vec<usize> = m.param_tensors().iter().map(|t| t.offset).collect();
    assert_eq!(offs, [0, 18, 20, 22, 24, 48]);
    assert_eq!(m.num_params(), 51);
    assert_eq!(m.memory_bits(), 51 * 8);
    assert_eq!(m.graph().outputs(), 3);
    assert_eq!(m.graph().shapes[3], Shape::Chw(2, 2, 2));
    assert_eq!(
        m.tensors_containing(&[0, 17, 18, 50, 51, 1000]),
        vec![0, 1, 5]
    );
    assert_eq!(m.float_param(4), values(24, 5).as_slice());
    assert_eq!(m.manifest().training.method, "clipping");
    assert_eq!(m.manifest().training.p_act, 0.0);
}

#[test]
fn rejects_bad_manifests_with_named_keys() {
    let t = small_tensors();
    let cases: Vec<(String, &str)> = vec![
        (
            SMALL_TOML.replace("version = 1", "version = 2"),
            "unsupported model format version 2",
        ),
        (
            SMALL_TOML.replace("format = \"accelsim-model\"", "format = \"onnx\""),
            "format",
        ),
        (
            SMALL_TOML.replace("type = \"relu\"", "type = \"gelu\""),
            "unknown layer type \"gelu\"",
        ),
        (
            SMALL_TOML.replace("padding = [1, 1]", "paddin = [1, 1]"),
            "paddin",
        ),
        (
            SMALL_TOML.replace("in_features = 8", "in_features = 9"),
            "in_features = 9",
        ),
        (
            SMALL_TOML.replace("bits = 8", "bits = 9"),
            "quantization.bits",
        ),
        (
            SMALL_TOML.replace("granularity = \"layer\"", "granularity = \"row\""),
            "granularity",
        ),
        (
            SMALL_TOML.replace("method = \"clipping\"", "method = \"magic\""),
            "training.method",
        ),
        (
            SMALL_TOML.replace("p_train = 0.0", "p_train = 0.0\np_act = 1.5"),
            "training.p_act",
        ),
        (
            SMALL_TOML.replace("name = \"relu1\"", "name = \"gn1\""),
            "layers[2].name",
        ),
        (
            SMALL_TOML.replace("classes = [\"a\", \"b\", \"c\"]", "classes = [\"a\"]"),
            "input.classes",
        ),
        (
            SMALL_TOML.replace("groups = 1", "groups = 3"),
            "does not divide",
        ),
        (
            SMALL_TOML.replace("[[layers]]\nname = \"flat\"\ntype = \"flatten\"\n", ""),
            "add a flatten layer",
        ),
        (
            SMALL_TOML.replace("type = \"relu\"", "type = \"relu\"\ninput = \"nope\""),
            "\"nope\"",
        ),
        ("version = [".to_string(), "not valid TOML"),
        (
            SMALL_TOML.replace("padding = [1, 1]", "padding = [9223372036854775807, 1]"),
            "does not fit",
        ),
        (
            SMALL_TOML.replace("out_channels = 2", "out_channels = 4000000000"),
            "exceeds",
        ),
        (
            SMALL_TOML.replace("in_features = 8", "in_features = -8"),
            "in_features",
        ),
    ];
    for (toml, want) in cases {
        let e = load_err(&toml, &t);
        assert!(e.contains(want), "expected {want:?} in: {e}");
        assert!(e.contains("m.toml"), "file not named: {e}");
        assert!(!e.contains('\n'), "multi-line error: {e}");
    }
}

#[test]
fn rejects_bad_tensors_with_named_tensor() {
    let mut missing = small_tensors();
    missing.remove(1);
    let e = load_err(SMALL_TOML, &missing);
    assert!(e.contains("\"conv1.bias\"") && e.contains("missing"), "{e}");

    let mut shape = small_tensors();
    shape[4].1 = vec![8, 3];
    let e = load_err(SMALL_TOML, &shape);
    assert!(
        e.contains("\"fc.weight\"") && e.contains("shape [8, 3]"),
        "{e}"
    );

    let mut extra = small_tensors();
    extra.push(("fc.wieght".into(), vec![1], vec![0.0]));
    let e = load_err(SMALL_TOML, &extra);
    assert!(
        e.contains("\"fc.wieght\"") && e.contains("not referenced"),
        "{e}"
    );

    let mut nan = small_tensors();
    nan[0].2[3] = f32::NAN;
    let e = load_err(SMALL_TOML, &nan);
    assert!(
        e.contains("\"conv1.weight\"") && e.contains("not finite"),
        "{e}"
    );
}

#[test]
fn rejects_truncated_and_missing_weight_files() {
    let d = tempfile::tempdir().unwrap();
    let p = write_model(d.path(), "t", SMALL_TOML, &small_tensors());
    let w = d.path().join("t.safetensors");
    let bytes = std::fs::read(&w).unwrap();
    for cut in [0, 4, 8, 20, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&w, &bytes[..cut]).unwrap();
        let e = Model::load(&p).unwrap_err().to_string();
        assert!(e.contains("t.safetensors"), "{e}");
    }
    let mut corrupt = bytes.clone();
    corrupt[10] = b'{';
    corrupt[11] = b'}';
    std::fs::write(&w, &corrupt).unwrap();
    assert!(Model::load(&p).is_err());
    std::fs::remove_file(&w).unwrap();
    let e = Model::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("cannot read") && e.contains("t.safetensors"),
        "{e}"
    );
    let e = Model::load(d.path().join("nope.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.toml"), "{e}");
}

/// Writes the small model plus `fc.bias:codes` with the given dtype and bytes.
fn write_with_codes(dir: &Path, dtype: safetensors::Dtype, codes: &[u8]) -> PathBuf {
    let mp = dir.join("c.toml");
    std::fs::write(
        &mp,
        SMALL_TOML.replace("small.safetensors", "c.safetensors"),
    )
    .unwrap();
    let tensors = small_tensors();
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let mut views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            let v = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .unwrap();
            (n.clone(), v)
        })
        .collect();
    views.push((
        "fc.bias:codes".into(),
        safetensors::tensor::TensorView::new(dtype, vec![3], codes).unwrap(),
    ));
    safetensors::serialize_to_file(views, &None, &dir.join("c.safetensors")).unwrap();
    mp
}

#[test]
fn stored_codes_are_cross_checked() {
    let d = tempfile::tempdir().unwrap();
    let p = write_model(d.path(), "small", SMALL_TOML, &small_tensors());
    let ours = Model::load(&p).unwrap();
    let id = ours.param_id("fc.bias").unwrap();
    let good = ours.memory_image()[ours.image_range(id)].to_vec();
    let m = Model::load(write_with_codes(d.path(), safetensors::Dtype::U8, &good)).unwrap();
    assert_eq!(m.memory_image(), ours.memory_image());
    let mut bad = good.clone();
    bad[2] ^= 1;
    let e = Model::load(write_with_codes(d.path(), safetensors::Dtype::U8, &bad))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"fc.bias:codes\"")
            && e.contains("1 code(s) differ")
            && e.contains("element 2"),
        "{e}"
    );
    let e = Model::load(write_with_codes(d.path(), safetensors::Dtype::I8, &good))
        .unwrap_err()
        .to_string();
    assert!(e.contains("dtype I8"), "{e}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Random single-character edits of a valid manifest never panic the loader.
    #[test]
    fn manifest_edits_never_panic(pos in 0usize..2000, ch in proptest::sample::select(vec!['0', '9', '-', '"', '[', ']', '=', 'x', '\n', ' '])) {
        let mut chars: Vec<char> = SMALL_TOML.chars().collect();
        let i = pos % chars.len();
        chars[i] = ch;
        let text: String = chars.into_iter().collect();
        let d = tempfile::tempdir().unwrap();
        let p = write_model(d.path(), "m", &text, &small_tensors());
        if let Err(e) = Model::load(&p) {
            let msg = e.to_string();
            proptest::prop_assert!(!msg.contains('\n'), "multi-line error: {}", msg);
        }
    }
}

/// A one-layer model whose only tensor is `weight` ([out, in] = `shape`), stored with `cfg` at 8 bits.
fn linear_model(
    dir: &Path,
    cfg: &crate::quant::QuantConfig,
    shape: &[usize],
    weight: &[f32],
) -> PathBuf {
    let w_max = cfg
        .w_max
        .map(|w| format!("w_max = {w:?}\n"))
        .unwrap_or_default();
    let toml = format!(
        r#"format = "accelsim-model"
version = 1
name = "lin-8b"
family = "lin"
weights = "lin.safetensors"

[input]
shape = [1, 1, {inp}]

[quantization]
bits = 8
granularity = "{g}"
symmetric = {sym}
signed = false
rounding = {round}
{w_max}
[[layers]]
name = "flat"
type = "flatten"

[[layers]]
name = "fc"
type = "linear"
in_features = {inp}
out_features = {out}
weight = "fc.weight"
"#,
        inp = shape[1],
        out = shape[0],
        g = cfg.granularity.name(),
        sym = cfg.symmetric,
        round = cfg.rounding == crate::quant::Rounding::Nearest,
    );
    let mp = dir.join("lin.toml");
    std::fs::write(&mp, toml).unwrap();
    write_f32_safetensors(
        &dir.join("lin.safetensors"),
        &[("fc.weight", shape, weight)],
    )
    .unwrap();
    mp
}

#[test]
fn ptq_equals_the_shared_vectors_at_every_width() {
    // The shared vectors (tests/data/quant_vectors.json) are what the PyTorch companion's quantizer is checked
    // against: post-training quantization of an 8-bit model at m bits must give exactly their codes.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quant_vectors.json"),
    )
    .unwrap();
    let file: crate::quant::vectors::VectorFile = serde_json::from_str(&text).unwrap();
    let d = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for case in file
        .cases
        .iter()
        .filter(|c| !c.signed && c.shape.len() == 2)
    {
        let cfg = case.config();
        let source = Model::load(linear_model(d.path(), &cfg, &case.shape, &case.input)).unwrap();
        assert_eq!(source.bits(), 8);
        let ptq = source
            .requantized(case.bits as u32, "lin-ptq")
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(ptq.bits(), case.bits as u32, "{}", case.name);
        assert_eq!(ptq.manifest().name, "lin-ptq");
        assert_eq!(ptq.manifest().family.as_deref(), Some("lin"));
        let codes: Vec<i64> = ptq.memory_image().iter().map(|&b| b as i64).collect();
        assert_eq!(codes, case.codes, "{}", case.name);
        // The floats are shared, not re-read or copied.
        assert!(std::ptr::eq(ptq.float_param(0), source.float_param(0)));
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} unsigned cases");
    // A width the scheme cannot store is an error naming the key, not a panic.
    let cfg = file.cases.iter().find(|c| !c.signed).unwrap().config();
    let m = Model::load(linear_model(d.path(), &cfg, &[4, 6], &[0.01; 24])).unwrap();
    let e = m.requantized(9, "x").unwrap_err().to_string();
    assert!(e.contains("quantization") && e.contains("2..=8"), "{e}");
}

#[test]
fn family_key_is_validated() {
    let t = small_tensors();
    let with = |f: &str| {
        SMALL_TOML.replace(
            "name = \"small\"",
            &format!("name = \"small\"\nfamily = {f}"),
        )
    };
    let d = tempfile::tempdir().unwrap();
    let p = write_model(d.path(), "ok", &with("\"fmnist-cnn.v2_x\""), &t);
    assert_eq!(
        Model::load(&p).unwrap().manifest().family.as_deref(),
        Some("fmnist-cnn.v2_x")
    );
    for bad in ["\"\"", "\"a,b\"", "\"a b\"", "3"] {
        let e = load_err(&with(bad), &t);
        assert!(e.contains("family"), "{bad}: {e}");
        assert!(!e.contains('\n'));
    }
}
