//! `accelsim model show FILE [--json]`: the graph, parameter count, memory bits at the model's precision and the
//! training facts recorded at export (docs/model-format.md).
use std::path::Path;

use serde_json::json;

use super::{CliError, CliResult};
use crate::model::{LayerKind, Model};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub command: ModelCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ModelCommand {
    /// Print a model's graph, parameter count, memory bits and training facts.
    Show(ShowArgs),
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The model manifest: a path, or a name in models/ (`fmnist-cnn-randbet-8b`); its .safetensors file sits
    /// next to it.
    #[arg(value_name = "MODEL")]
    pub file: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> CliResult {
    match args.command {
        ModelCommand::Show(a) => show(a),
    }
}

/// Parameter count of one layer (quantized parameters only; BatchNorm statistics are float buffers).
fn layer_params(model: &Model, i: usize) -> usize {
    model
        .param_tensors()
        .iter()
        .filter(|p| p.layer == i)
        .map(|p| p.len)
        .sum()
}

fn layer_inputs(model: &Model, i: usize) -> Vec<String> {
    let layers = &model.manifest().layers;
    model.graph().inputs[i]
        .iter()
        .map(|&v| {
            if v == 0 {
                "input".to_string()
            } else {
                layers[v - 1].name.clone()
            }
        })
        .collect()
}

/// The `model show --json` object of the model manifest at `file` (already located; the Python binding's
/// `Model.info`).
pub fn show_json(file: &Path) -> Result<serde_json::Value, CliError> {
    let model = Model::load(file).map_err(|e| CliError::user(e.to_string()))?;
    let m = model.manifest();
    let q = model.quant_config();
    let t = &m.training;
    let layer_json: Vec<_> = m
        .layers
        .iter()
        .enumerate()
        .map(|(i, l)| {
            json!({
                "name": l.name,
                "type": l.kind.type_name(),
                "inputs": layer_inputs(&model, i),
                "output_shape": model.graph().shapes[i].to_string(),
                "params": layer_params(&model, i),
            })
        })
        .collect();
    Ok(json!({
        "file": file.display().to_string(),
        "name": m.name,
        "format_version": crate::model::manifest::FORMAT_VERSION,
        "method": t.method,
        "bits": q.bits,
        "w_max": q.w_max,
        "p_train": t.p_train,
        "p_act": t.p_act,
        "params": model.num_params(),
        "memory_bits": model.memory_bits(),
        "clean_error_pct": t.clean_error_pct,
        "test_images": t.test_images,
        "epochs": t.epochs,
        "seed": t.seed,
        "framework": t.framework,
        "notes": t.notes,
        "quantization": q,
        "quantization_text": q.describe(),
        "input": m.input,
        "classes": model.graph().outputs(),
        "param_tensors": model.param_tensors().len(),
        "layers": layer_json,
    }))
}

fn show(a: ShowArgs) -> CliResult {
    let file = super::locate_flag(crate::locate::Shipped::Model, "model show", &a.file)?;
    if a.json {
        let out = show_json(&file)?;
        println!(
            "{}",
            serde_json::to_string_pretty(&out).map_err(|e| CliError::internal(e.to_string()))?
        );
        return Ok(());
    }
    let model = Model::load(&file).map_err(|e| CliError::user(e.to_string()))?;
    let m = model.manifest();
    let q = model.quant_config();
    let t = &m.training;
    let layers = &m.layers;
    let [c, h, w] = m.input.shape;
    println!("model       {} ({})", m.name, file.display());
    println!(
        "input       {c}x{h}x{w}, dataset {}, {} classes",
        m.input.dataset.as_deref().unwrap_or("-"),
        model.graph().outputs()
    );
    if !m.input.mean.is_empty() {
        println!("normalize   mean {:?}, std {:?}", m.input.mean, m.input.std);
    }
    println!("quantized   {}", q.describe());
    let recorded = match (t.clean_error_pct, t.test_images) {
        (Some(e), Some(n)) => format!("clean error {e:.2}% on {n} test images"),
        (Some(e), None) => format!("clean error {e:.2}%"),
        _ => "clean error not recorded".to_string(),
    };
    println!(
        "training    method {}, p_train {}{}, {recorded}{}{}",
        t.method,
        t.p_train,
        if t.p_act > 0.0 {
            format!(", p_act {}", t.p_act)
        } else {
            String::new()
        },
        t.epochs.map_or(String::new(), |e| format!(", {e} epochs")),
        t.seed.map_or(String::new(), |s| format!(", seed {s}")),
    );
    if let Some(f) = &t.framework {
        println!("framework   {f}");
    }
    if let Some(n) = t.notes.as_deref().filter(|n| !n.is_empty()) {
        println!("notes       {n}");
    }
    println!();
    println!(
        "{:<4} {:<16} {:<15} {:<20} {:>12} {:>10}",
        "#", "layer", "type", "input", "output", "params"
    );
    for (i, l) in layers.iter().enumerate() {
        let extra = match &l.kind {
            LayerKind::Conv2d {
                kernel,
                stride,
                padding,
                dilation,
                groups,
                ..
            } => {
                let mut e = format!(
                    " k{}x{} s{} p{}",
                    kernel[0], kernel[1], stride[0], padding[0]
                );
                if *groups > 1 {
                    e.push_str(&format!(" g{groups}"));
                }
                if dilation != &[1, 1] {
                    e.push_str(&format!(" d{}", dilation[0]));
                }
                e
            }
            _ => String::new(),
        };
        println!(
            "{:<4} {:<16} {:<15} {:<20} {:>12} {:>10}{}",
            i,
            l.name,
            l.kind.type_name(),
            layer_inputs(&model, i).join("+"),
            model.graph().shapes[i].to_string(),
            layer_params(&model, i),
            extra
        );
    }
    println!();
    let bits = model.memory_bits();
    println!(
        "parameters  {} in {} tensors; weight memory {} bits ({:.1} KiB) at {} bits/weight",
        model.num_params(),
        model.param_tensors().len(),
        bits,
        bits as f64 / 8192.0,
        q.bits
    );
    Ok(())
}
