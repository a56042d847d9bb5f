//! `accelsim cycles`: the systolic-array model on a SCALE-Sim topology CSV or a model's layers (docs/systolic.md).
//!
//! ```text
//! accelsim cycles --topology hw_configs/topologies/resnet20.csv [--hw 14nm_sram] [--array 32x32]
//!                 [--dataflow ws|os|is] [--weight-bits 8] [--scalesim-ofmap] [--vdd V] [--json | --csv]
//! accelsim cycles --model fmnist-cnn-randbet-8b [--hw ...] [--dataflow ...] [--vdd V] [--json | --csv]
//! ```
use super::{values, CliError, CliResult};
use crate::config::HwConfig;
use crate::energy::{EnergyBreakdown, EnergyModel};
use crate::locate::Shipped;
use crate::model::Model;
use crate::sweep::scenario::systolic_layers;
use crate::systolic::{
    read_topology, simulate_network, ArrayParams, BufferParams, Dataflow, NetworkStats,
    OfmapRounding,
};
use std::fmt::Write as _;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// SCALE-Sim topology CSV: a path, or a name in hw_configs/topologies/ (`resnet20`). Columns `Layer name,
    /// IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,` (padding included
    /// in the IFMAP size) or the GEMM form `Layer, M, N, K,`. An optional `Groups` column (accelsim's extension)
    /// maps grouped and depthwise convolutions one GEMM per group.
    #[arg(long, value_name = "CSV", required_unless_present = "model")]
    pub topology: Option<String>,
    /// A model instead of a topology: a name in models/ or a manifest path; its conv and linear layers (batch 1)
    /// are mapped, as `run` and `sweep` do.
    #[arg(long, value_name = "MODEL", conflicts_with = "topology")]
    pub model: Option<String>,
    /// Hardware config: a name in hw_configs/ or a path. Its [systolic], [activation_sram] and [weight_sram]
    /// sections set the array, buffers and weight memory.
    #[arg(long, value_name = "CFG", default_value = "14nm_sram")]
    pub hw: String,
    /// Array size ROWSxCOLS (overrides the config), e.g. 32x32.
    #[arg(long, value_name = "RxC")]
    pub array: Option<String>,
    /// Dataflow (overrides the config): ws, os or is.
    #[arg(long, value_name = "DF")]
    pub dataflow: Option<String>,
    /// Weight width in bits (8 or 4 for the shipped models; 1..=32). Sets weight-SRAM words per weight
    /// [default: the model's bits with --model, else 8].
    #[arg(long, value_name = "BITS", allow_negative_numbers = true,
          value_parser = values::int_in(1u32, 32))]
    pub weight_bits: Option<u32>,
    /// Round output sizes as SCALE-Sim v2 does (`ceil((H - R + stride) / stride)`) instead of PyTorch's floor,
    /// for a like-for-like comparison with SCALE-Sim on strided layers.
    #[arg(long)]
    pub scalesim_ofmap: bool,
    /// Also report the energy per inference at this supply voltage (volts; rails per the config's
    /// `[voltage] scaled_rails`; allowed 0.5·vmin_v..=1.5·nominal_v): text gets the breakdown and the savings
    /// against `nominal_v`, --json and --csv get each layer's share at V and at nominal.
    #[arg(long, value_name = "V", allow_negative_numbers = true,
          value_parser = values::finite("volts, e.g. 0.85"))]
    pub vdd: Option<f64>,
    /// Print a JSON list with one object per layer (every per-layer statistic, per-array weight reads included;
    /// with --vdd also `energy_pj` and `nominal_energy_pj` breakdowns).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print one CSV row per layer (units in the header; with --vdd also the layer's energy columns).
    #[arg(long)]
    pub csv: bool,
}

/// Parses `RxC` (e.g. `32x32`) into (rows, cols).
pub fn parse_array(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("--array `{s}`: expected ROWSxCOLS with both in 1..=65536, e.g. 32x32");
    let (r, c) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let r: u64 = r.trim().parse().map_err(|_| bad())?;
    let c: u64 = c.trim().parse().map_err(|_| bad())?;
    if !(1..=65536).contains(&r) || !(1..=65536).contains(&c) {
        return Err(bad());
    }
    Ok((r, c))
}

pub fn run(args: Args) -> CliResult {
    let (hw, net) = network(&args)?;
    let layer_energy = match args.vdd {
        Some(vdd) if args.json || args.csv => Some(per_layer_energy(&net, &hw, vdd)?),
        _ => None,
    };
    let out = if args.json {
        let mut s = json_report(&net, layer_energy.as_deref())?;
        s.push('\n');
        s
    } else if args.csv {
        csv_report(&net, layer_energy.as_deref())
    } else {
        let mut t = text_report(&net, &hw);
        if let Some(vdd) = args.vdd {
            t.push_str(&energy_report(&net, &hw, vdd)?);
        }
        t
    };
    print!("{out}");
    Ok(())
}

/// The hardware config and the systolic statistics of the topology (or model) of `args`; `--json` without
/// `--vdd` prints the per-layer part, which is what the Python binding's `accelsim.cycles` returns.
pub fn network(args: &Args) -> Result<(HwConfig, NetworkStats), CliError> {
    let hw = super::load_hw("--hw", &args.hw)?;
    let mut sys = hw.systolic.clone();
    if let Some(a) = &args.array {
        let (r, c) = parse_array(a).map_err(CliError::user)?;
        sys.rows = r;
        sys.cols = c;
    }
    if let Some(d) = &args.dataflow {
        sys.dataflow = d
            .parse::<Dataflow>()
            .map_err(|e| CliError::user(format!("--dataflow: {e}")))?;
    }
    let array: ArrayParams = sys
        .array_params()
        .map_err(|e| CliError::user(format!("{}: {e}", hw.origin)))?;
    let buffers =
        BufferParams::from_hw(&hw).map_err(|e| CliError::user(format!("{}: {e}", hw.origin)))?;
    let rounding = if args.scalesim_ofmap {
        OfmapRounding::ScaleSim
    } else {
        OfmapRounding::Floor
    };
    let (layers, model_bits) = match (&args.topology, &args.model) {
        (Some(t), None) => {
            let topology = super::locate_flag(Shipped::Topology, "--topology", t)?;
            let layers =
                read_topology(&topology, rounding).map_err(|e| CliError::user(e.to_string()))?;
            if !layers.iter().any(|l| l.name.contains("[g")) {
                if let Some(l) = layers
                    .iter()
                    .find(|l| crate::systolic::looks_depthwise(&l.name))
                {
                    eprintln!(
                        "note: {}: layer `{}` looks depthwise but the CSV has no Groups column, so it is simulated \
                         as a dense convolution (add a Groups column; docs/systolic.md)",
                        topology.display(),
                        l.name
                    );
                }
            }
            (layers, None)
        }
        (None, Some(m)) => {
            if args.scalesim_ofmap {
                return Err(CliError::user(
                    "--scalesim-ofmap applies to --topology only (a model's layers use PyTorch's output sizes)",
                ));
            }
            let path = super::locate_flag(Shipped::Model, "--model", m)?;
            let model = Model::load(&path).map_err(|e| CliError::user(e.to_string()))?;
            let layers = systolic_layers(&model).map_err(|e| CliError::user(e.to_string()))?;
            (layers, Some(model.bits()))
        }
        _ => {
            return Err(CliError::user(
                "give one of --topology CSV or --model MODEL",
            ))
        }
    };
    let weight_bits = args.weight_bits.or(model_bits).unwrap_or(8);
    let net = simulate_network(&layers, &array, &buffers, weight_bits)
        .map_err(|e| CliError::user(e.to_string()))?;
    Ok((hw, net))
}

/// A layer's energy at the chosen voltage and at nominal (see [`EnergyModel::per_layer_energy`]).
pub struct LayerEnergy {
    pub at: EnergyBreakdown,
    pub nominal: EnergyBreakdown,
}

/// Each layer's energy at `vdd_v` and at the config's nominal voltage.
fn per_layer_energy(
    net: &NetworkStats,
    hw: &HwConfig,
    vdd_v: f64,
) -> Result<Vec<LayerEnergy>, CliError> {
    hw.check_vdd(vdd_v)
        .map_err(|e| CliError::user(e.to_string()))?;
    let user = |e: crate::energy::EnergyError| CliError::user(format!("{}: {e}", hw.origin));
    let model = EnergyModel::new(hw).map_err(user)?;
    let at = model.per_layer_energy(net, vdd_v).map_err(user)?;
    let nominal = model
        .per_layer_energy(net, hw.voltage.nominal_v)
        .map_err(user)?;
    Ok(at
        .into_iter()
        .zip(nominal)
        .map(|(at, nominal)| LayerEnergy { at, nominal })
        .collect())
}

/// The per-layer JSON list; with `energy`, each object also holds `energy_pj` and `nominal_energy_pj`.
fn json_report(net: &NetworkStats, energy: Option<&[LayerEnergy]>) -> Result<String, CliError> {
    let ser =
        |e: serde_json::Error| CliError::internal(format!("cannot serialise the results: {e}"));
    let Some(energy) = energy else {
        return serde_json::to_string_pretty(&net.layers).map_err(ser);
    };
    let mut rows = Vec::with_capacity(net.layers.len());
    for (l, e) in net.layers.iter().zip(energy) {
        let mut v = serde_json::to_value(l).map_err(ser)?;
        if let serde_json::Value::Object(o) = &mut v {
            o.insert("energy_pj".into(), serde_json::to_value(e.at).map_err(ser)?);
            o.insert(
                "nominal_energy_pj".into(),
                serde_json::to_value(e.nominal).map_err(ser)?,
            );
        }
        rows.push(v);
    }
    serde_json::to_string_pretty(&rows).map_err(ser)
}

/// One CSV row per layer; units in the header (cycles, percent, element counts, bytes; with `energy` also the
/// layer's energy in pJ at `vdd_v` and at nominal).
pub fn csv_report(net: &NetworkStats, energy: Option<&[LayerEnergy]>) -> String {
    let mut s = String::from(
        "layer,m,n,k,macs,compute_cycles,stall_cycles,total_cycles,utilization_pct,mapping_efficiency_pct,\
         weight_sram_reads,weight_sram_word_reads,input_sram_reads,output_sram_writes,output_sram_reads,\
         dram_reads_bytes,dram_writes_bytes",
    );
    if energy.is_some() {
        s.push_str(
            ",vdd_v,weight_sram_dynamic_pj,weight_sram_leakage_pj,act_sram_pj,accumulator_pj,mac_pj,dram_pj,energy_pj,\
             nominal_energy_pj",
        );
    }
    s.push('\n');
    for (i, l) in net.layers.iter().enumerate() {
        let _ = write!(
            s,
            "{},{},{},{},{},{},{},{},{:.4},{:.4},{},{},{},{},{},{},{}",
            l.layer,
            l.m,
            l.n,
            l.k,
            l.macs,
            l.compute_cycles,
            l.stall_cycles,
            l.total_cycles,
            l.utilization_pct,
            l.mapping_efficiency_pct,
            l.weight_sram_reads,
            l.weight_sram_word_reads,
            l.input_sram_reads,
            l.output_sram_writes,
            l.output_sram_reads,
            l.dram_reads_bytes,
            l.dram_writes_bytes
        );
        if let Some(e) = energy.and_then(|e| e.get(i)) {
            let a = &e.at;
            let _ = write!(
                s,
                ",{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6}",
                a.vdd_v,
                a.weight_sram_dynamic_pj,
                a.weight_sram_leakage_pj,
                a.act_sram_pj,
                a.accumulator_pj,
                a.mac_pj,
                a.dram_pj,
                a.total_pj,
                e.nominal.total_pj
            );
        }
        s.push('\n');
    }
    s
}

fn energy_report(net: &NetworkStats, hw: &HwConfig, vdd_v: f64) -> Result<String, CliError> {
    hw.check_vdd(vdd_v)
        .map_err(|e| CliError::user(e.to_string()))?;
    let user = |e: crate::energy::EnergyError| CliError::user(format!("{}: {e}", hw.origin));
    let model = EnergyModel::new(hw).map_err(user)?;
    let at = model.energy_per_inference(net, vdd_v).map_err(user)?;
    let nominal = model.nominal_energy(net).map_err(user)?;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "energy per inference (pJ) at {vdd_v} V vs nominal {} V (scaled rails: {}):",
        hw.voltage.nominal_v,
        serde_json::to_string(&hw.voltage.scaled_rails).unwrap_or_default()
    );
    for (name, a, n) in [
        (
            "weight_sram_dynamic",
            at.weight_sram_dynamic_pj,
            nominal.weight_sram_dynamic_pj,
        ),
        (
            "weight_sram_leakage",
            at.weight_sram_leakage_pj,
            nominal.weight_sram_leakage_pj,
        ),
        ("act_sram", at.act_sram_pj, nominal.act_sram_pj),
        ("accumulators", at.accumulator_pj, nominal.accumulator_pj),
        ("mac", at.mac_pj, nominal.mac_pj),
        ("dram", at.dram_pj, nominal.dram_pj),
        ("total", at.total_pj, nominal.total_pj),
    ] {
        let _ = writeln!(s, "  {name:<20} {a:>14.1} {n:>14.1}");
    }
    let _ = writeln!(
        s,
        "savings vs nominal: total {:.2} %, weight SRAM {:.2} %",
        model.savings_pct(net, vdd_v).map_err(user)?,
        model.weight_sram_savings_pct(net, vdd_v).map_err(user)?
    );
    Ok(s)
}

fn text_report(net: &NetworkStats, hw: &HwConfig) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} ({}): {}x{} array, {} dataflow, {} MHz, {}-bit weights",
        hw.name, hw.origin, net.rows, net.cols, net.dataflow, net.clock_mhz, net.weight_bits
    );
    let _ = writeln!(
        s,
        "{:<16} {:>12} {:>10} {:>8} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "layer",
        "compute_cyc",
        "stall_cyc",
        "util_%",
        "weight_rd",
        "input_rd",
        "output_wr",
        "dram_rd_B",
        "dram_wr_B"
    );
    for l in &net.layers {
        let _ = writeln!(
            s,
            "{:<16} {:>12} {:>10} {:>8.2} {:>12} {:>12} {:>12} {:>12} {:>12}",
            l.layer,
            l.compute_cycles,
            l.stall_cycles,
            l.utilization_pct,
            l.weight_sram_reads,
            l.input_sram_reads,
            l.output_sram_writes,
            l.dram_reads_bytes,
            l.dram_writes_bytes
        );
    }
    let _ = writeln!(
        s,
        "{:<16} {:>12} {:>10} {:>8.2} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "total",
        net.compute_cycles,
        net.stall_cycles,
        net.utilization_pct,
        net.weight_sram_reads,
        net.input_sram_reads,
        net.output_sram_writes,
        net.dram_reads_bytes,
        net.dram_writes_bytes
    );
    let _ = writeln!(
        s,
        "latency {:.3} us ({} cycles); {} MACs; weight SRAM: {} words in {} arrays, {} word reads, {} word writes",
        net.latency_s * 1e6,
        net.total_cycles,
        net.macs,
        net.weight_words,
        net.weight_arrays_used,
        net.weight_sram_word_reads,
        net.weight_sram_word_writes
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_array_sizes() {
        assert_eq!(parse_array("32x16"), Ok((32, 16)));
        assert_eq!(parse_array(" 8X8 "), Ok((8, 8)));
        for bad in ["32", "0x4", "4x", "axb", "70000x1"] {
            assert!(parse_array(bad).unwrap_err().contains("--array"), "{bad}");
        }
    }
}
