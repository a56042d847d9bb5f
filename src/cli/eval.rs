//! `accelsim eval --model FILE [--data DIR] [--dataset NAME] [--limit N] [--float] [--logits OUT.npy] [--json]`:
//! the clean test error measured by the inference engine on the model's de-quantized (or, with `--float`, float)
//! weights; `--logits` also writes the network's outputs so that an import can be checked against its framework
//! (docs/onnx.md).
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::{values, CliError, CliResult};
use crate::config::systolic::Datapath;
use crate::data::{self, DatasetKind, PAPER_TEST_IMAGES};
use crate::engine::act_store::Reliable;
use crate::engine::int8::{Int8Network, Int8Options, CALIBRATION_IMAGES};
use crate::engine::{self, Inference, Network};
use crate::locate::Shipped;
use crate::model::Model;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model manifest: a path, or a name in models/ (`fmnist-cnn-randbet-8b`).
    #[arg(long, value_name = "MODEL")]
    pub model: String,
    /// Folder with the test split [default for Fashion-MNIST: /usr/share/datasets/fashion-mnist].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// fashion-mnist, mnist, cifar10 or cifar100 [default: the manifest's `[input] dataset`, else fashion-mnist].
    #[arg(long, value_name = "NAME")]
    pub dataset: Option<String>,
    /// Evaluate only the first N test images (N >= 1) [default: all].
    #[arg(long, value_name = "N", conflicts_with = "paper_protocol", allow_negative_numbers = true,
          value_parser = values::count_from(1))]
    pub limit: Option<usize>,
    /// The paper's protocol: the first 9000 test images (docs/run-and-sweep.md#evaluation-protocol), same as --limit 9000.
    #[arg(long)]
    pub paper_protocol: bool,
    /// Use the float weights from the file instead of the quantized ones (a "no quantization" baseline).
    #[arg(long)]
    pub float: bool,
    /// Arithmetic: float (the paper's fake quantization) or int8 (integer codes, int32 accumulation; activations
    /// calibrated on the first 1000 training images of --data) (docs/datapath.md) [default: float].
    #[arg(long, value_name = "DATAPATH", value_parser = values::datapath, conflicts_with = "float")]
    pub datapath: Option<crate::config::systolic::Datapath>,
    /// Also write the network's outputs as a float32 .npy of shape [images, outputs] (row i = test image i).
    #[arg(long, value_name = "OUT.npy")]
    pub logits: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> CliResult {
    let out = evaluate(&args, true)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| CliError::internal(e.to_string()))?
        );
    } else {
        print_text(&out);
    }
    Ok(())
}

/// Evaluates the model of `args` and returns the `eval --json` object (the Python binding's `Model.eval`);
/// `progress`: draw a progress bar on stderr.
pub fn evaluate(args: &Args, progress: bool) -> Result<serde_json::Value, CliError> {
    let model_path = super::locate_flag(Shipped::Model, "--model", &args.model)?;
    super::check_data_dir(args.data.as_deref())?;
    let model = Model::load(&model_path).map_err(|e| CliError::user(e.to_string()))?;
    let m = model.manifest();
    let kind = match args.dataset.as_deref().or(m.input.dataset.as_deref()) {
        Some(name) => DatasetKind::parse(name).ok_or_else(|| {
            CliError::user(format!(
                "dataset \"{name}\" is not one of {} (give --dataset)",
                DatasetKind::ALL.map(|k| k.name()).join(", ")
            ))
        })?,
        None => DatasetKind::FashionMnist,
    };
    let limit = if args.paper_protocol {
        Some(PAPER_TEST_IMAGES)
    } else {
        args.limit
    };
    let ds = data::load_test_split(kind, args.data.as_deref(), limit)
        .map_err(|e| CliError::user(e.to_string()))?;
    let (c, h, w) = ds.image_shape();
    if [c, h, w] != m.input.shape {
        return Err(CliError::user(format!(
            "{}: input.shape {:?} does not match the {kind} images ({c}x{h}x{w})",
            model_path.display(),
            m.input.shape
        )));
    }
    if model.graph().outputs() < ds.classes {
        return Err(CliError::user(format!(
            "{}: the model has {} logits but {kind} has {} classes",
            model_path.display(),
            model.graph().outputs(),
            ds.classes
        )));
    }
    let (mean, std) = if m.input.mean.is_empty() {
        (vec![0.0], vec![1.0])
    } else {
        (m.input.mean.clone(), m.input.std.clone())
    };
    let x = ds
        .normalized(&mean, &std)
        .map_err(|e| CliError::user(e.to_string()))?;
    let datapath = args.datapath.unwrap_or_default();
    if args.float && datapath == Datapath::Int8 {
        return Err(CliError::user(
            "--float and --datapath int8 exclude each other (--float keeps the unquantized weights); allowed: one of them",
        ));
    }
    let (fnet, inet) = match datapath {
        Datapath::Float if args.float => (Some(Network::from_model_float(&model)), None),
        Datapath::Float => (Some(Network::from_model(&model)), None),
        Datapath::Int8 => {
            let calib =
                data::load_train_split(kind, args.data.as_deref(), Some(CALIBRATION_IMAGES))
                    .map_err(|e| {
                        CliError::user(format!(
                            "--datapath int8 calibration (training images): {e}"
                        ))
                    })?
                    .normalized(&mean, &std)
                    .map_err(|e| CliError::user(e.to_string()))?;
            let net =
                Int8Network::build(&model, calib.view(), Int8Options::default()).map_err(|e| {
                    CliError::user(format!("{}: --datapath int8: {e}", model_path.display()))
                })?;
            (None, Some(net))
        }
    };
    let net: &dyn Inference = match (&fnet, &inet) {
        (Some(f), _) => f,
        (_, Some(i)) => i,
        _ => unreachable!("one network is built"),
    };
    let bar = if progress {
        ProgressBar::new(ds.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} eval [{bar:30}] {pos}/{len} images {per_sec} eta {eta}",
        )
        .map_err(|e| CliError::internal(e.to_string()))?
        .progress_chars("=> "),
    );
    let t0 = Instant::now();
    let clean = engine::eval::evaluate_with(net, x.view(), &ds.labels, &|n| bar.inc(n as u64))
        .map_err(|e| CliError::user(format!("{}: {e}", model_path.display())))?;
    let secs = t0.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if let Some(path) = &args.logits {
        let logits = match (&fnet, &inet) {
            (Some(f), _) => f.forward(x.view()),
            (_, Some(i)) => i
                .forward(x.view(), &Reliable, 0)
                .map_err(|e| CliError::user(format!("{}: {e}", model_path.display())))?,
            _ => unreachable!("one network is built"),
        };
        let shape = [logits.nrows(), logits.ncols()];
        let data = logits.into_raw_vec_and_offset().0;
        crate::npy::write_f32(path, &data, &shape)
            .map_err(|e| CliError::user(format!("--logits {}: {e}", path.display())))?;
    }
    Ok(json!({
        "model": m.name,
        "file": model_path.display().to_string(),
        "dataset": kind.name(),
        "images": clean.images,
        "wrong": clean.wrong,
        "clean_error_pct": clean.error_pct(),
        "recorded_clean_error_pct": m.training.clean_error_pct,
        "recorded_test_images": m.training.test_images,
        "weights": if args.float { "float" } else { "quantized" },
        "datapath": datapath.name(),
        "bits": model.bits(),
        "seconds": secs,
        "images_per_s": clean.images as f64 / secs.max(1e-9),
    }))
}

fn print_text(out: &serde_json::Value) {
    let f = |k: &str| out[k].as_f64().unwrap_or(f64::NAN);
    let s = |k: &str| out[k].as_str().unwrap_or("?").to_string();
    println!(
        "{}: clean error {:.2}% ({} of {} {} test images wrong; {} weights, {} bits)",
        s("model"),
        f("clean_error_pct"),
        out["wrong"],
        out["images"],
        s("dataset"),
        s("weights"),
        out["bits"]
    );
    if let Some(r) = out["recorded_clean_error_pct"].as_f64() {
        println!(
            "recorded at export: {r:.2}% on {} images",
            out["recorded_test_images"]
                .as_u64()
                .map_or("?".into(), |n| n.to_string())
        );
    }
    println!("{:.2} s, {:.0} images/s", f("seconds"), f("images_per_s"));
}
