//! The Markdown report of a sweep: embeds the plots and states, per model and profile, the lowest voltage whose
//! test error stays within a tolerance and the energy saved there.
//!
//! Definitions (docs/run-and-sweep.md):
//! - reference error = the faulty error of the reference model at its highest swept voltage (the nominal point,
//!   where it equals the clean error); the reference model is the 8-bit model trained with method `normal`
//!   (else the widest trained `normal` model, else any `normal` model, else the first model of the sweep; the
//!   report says which);
//! - threshold = reference error + `tolerance_pts` (default 1 percentage point);
//! - lowest safe voltage of a (model, profile) = the lowest swept voltage v such that the mean faulty error at v
//!   **and at every swept voltage above v** is ≤ threshold (robustness must hold all the way down, docs/run-and-sweep.md#evaluation-protocol);
//! - best operating point of a profile = among the lowest safe points of all (model, width) series, the one with
//!   the lowest total energy per inference (ties: lower weight-SRAM energy, then lower error);
//! - rails comparison (only when the rows span more than one rail set, `sweep --rails` given more than once) =
//!   per profile and (model, ECC) the lowest safe voltage of each rail set, its error and energy there, against
//!   the "weights only" set (the first without `activation_sram`, docs/run-and-sweep.md#rails-axis);
//! - low-precision check = whether a model of at most 4 bits stays within 1 point of the reference (the 8-bit
//!   normal model) at ≥ 30 % weight-SRAM energy below 8-bit weights at V_min (docs/run-and-sweep.md#best-operating-point).
use std::fmt::Write as _;

use super::SweepRow;

/// Default tolerance over the reference error, in percentage points.
pub const DEFAULT_TOLERANCE_PTS: f64 = 1.0;

/// The reference the tolerance is measured from.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    pub model: String,
    /// True when a model trained with method `normal` was found; false when the first model was used instead.
    pub is_normal: bool,
    /// Bits per weight of the reference model, and whether it was trained at that width (not PTQ).
    pub bits: u32,
    pub trained: bool,
    pub error_pct: f64,
    pub threshold_pct: f64,
}

/// Lowest-safe-voltage result of one (model, profile) series.
#[derive(Debug, Clone, PartialEq)]
pub struct SafePoint {
    pub model: String,
    pub family: String,
    pub method: String,
    pub bits: u32,
    pub weights_source: String,
    pub profile: String,
    pub clean_error_pct: f64,
    /// Faulty error at the highest swept voltage.
    pub nominal_error_pct: f64,
    /// The lowest safe grid point, or `None` when even the highest voltage exceeds the threshold.
    pub safe: Option<SweepRow>,
}

/// The best operating point of one profile (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct BestPoint {
    pub profile: String,
    /// `None` when no series has a safe point on this profile.
    pub row: Option<SweepRow>,
}

/// Low-bit-width check of one profile: the (≤ 4-bit) row with the largest weight-SRAM saving against 8-bit
/// weights at V_min among those within 1 point of the 8-bit normal reference (monotone rule).
#[derive(Debug, Clone, PartialEq)]
pub struct LowBitCheck {
    pub profile: String,
    /// Threshold used: reference error + 1 point.
    pub threshold_pct: f64,
    /// The qualifying row with the largest `weight_sram_saving_vs_vmin_pct`, if any row of ≤ 4 bits is within
    /// the threshold at all.
    pub best: Option<SweepRow>,
    /// Whether `best` reaches ≥ 30 % weight-SRAM saving against 8-bit at V_min.
    pub meets_30_pct: bool,
}

/// One rail set of a (model, profile) in the rails comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct RailsPoint {
    /// The `rails` label (`weight_sram+activation_sram`).
    pub rails: String,
    /// Faulty error at the highest swept voltage.
    pub nominal_error_pct: f64,
    /// Fault samples averaged per point and test images per sample.
    pub samples: u32,
    pub test_images: u32,
    /// The lowest safe grid point of this rail set (same threshold and monotone rule as [`SafePoint`]).
    pub safe: Option<SweepRow>,
    /// This set's row at the voltage where the comparison's base set is lowest safe (`None` when the base set
    /// has no safe point).
    pub at_base_v: Option<SweepRow>,
    /// Total energy at this set's lowest safe voltage against the base set's at its own, percent saved
    /// (`(1 − E / E_base) · 100`; `None` unless both have a safe point).
    pub energy_vs_base_pct: Option<f64>,
}

/// The rail sets of one (model, profile): "weights only" against "weights and activations".
#[derive(Debug, Clone, PartialEq)]
pub struct RailsComparison {
    pub profile: String,
    /// The curve without its rails ([`SweepRow::series_without_rails`]: model, plus its ECC scheme).
    pub model: String,
    pub bits: u32,
    pub weights_source: String,
    /// The base rail set: the first (in sweep order) without `activation_sram`, else the first.
    pub base_rails: String,
    /// Every rail set of the sweep with rows of this (model, profile), in sweep order.
    pub sets: Vec<RailsPoint>,
}

/// Whether a `rails` label names the activation SRAM.
pub fn scales_activations(rails: &str) -> bool {
    rails.split('+').any(|r| r == "activation_sram")
}

/// The rails comparison of `rows` (see the module docs); empty when they hold one rail set.
pub fn compare_rails(rows: &[SweepRow], threshold_pct: f64) -> Vec<RailsComparison> {
    let mut sets: Vec<&str> = Vec::new();
    for r in rows {
        if !sets.contains(&r.rails.as_str()) {
            sets.push(&r.rails);
        }
    }
    if sets.len() < 2 {
        return Vec::new();
    }
    let base = sets
        .iter()
        .copied()
        .find(|l| !scales_activations(l))
        .unwrap_or(sets[0]);
    let mut keys: Vec<(String, String)> = Vec::new();
    for r in rows {
        let k = (r.profile.clone(), r.series_without_rails());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    // Profiles in name order (as the lowest-safe table), models in the order they first appear.
    let profiles = {
        let mut p: Vec<String> = keys.iter().map(|k| k.0.clone()).collect();
        p.sort();
        p.dedup();
        p
    };
    let mut out = Vec::new();
    for profile in &profiles {
        for (_, model) in keys.iter().filter(|k| &k.0 == profile) {
            let series_of = |rails: &str| {
                let mut v: Vec<&SweepRow> = rows
                    .iter()
                    .filter(|r| {
                        &r.profile == profile
                            && &r.series_without_rails() == model
                            && r.rails == rails
                    })
                    .collect();
                v.sort_by(|a, b| b.vdd_v.total_cmp(&a.vdd_v));
                v
            };
            let base_series = series_of(base);
            let base_safe = lowest_safe(&base_series, threshold_pct);
            let mut points = Vec::new();
            let mut top_row: Option<&SweepRow> = None;
            for &rails in &sets {
                let series = series_of(rails);
                let Some(&top) = series.first() else { continue };
                top_row.get_or_insert(top);
                let safe = lowest_safe(&series, threshold_pct);
                points.push(RailsPoint {
                    rails: rails.to_string(),
                    nominal_error_pct: top.faulty_error_pct,
                    samples: top.samples,
                    test_images: top.test_images,
                    safe: safe.cloned(),
                    at_base_v: base_safe
                        .and_then(|b| series.iter().find(|r| r.vdd_v == b.vdd_v))
                        .map(|r| (*r).clone()),
                    energy_vs_base_pct: match (safe, base_safe) {
                        (Some(a), Some(b)) if b.energy_pj > 0.0 => {
                            Some((1.0 - a.energy_pj / b.energy_pj) * 100.0)
                        }
                        _ => None,
                    },
                });
            }
            let Some(top) = top_row else { continue };
            out.push(RailsComparison {
                profile: profile.clone(),
                model: model.clone(),
                bits: top.bits,
                weights_source: top.weights_source.clone(),
                base_rails: base.to_string(),
                sets: points,
            });
        }
    }
    out
}

/// Tolerance of the low-bit-width check, percentage points (the question of docs/run-and-sweep.md#best-operating-point).
pub const LOW_BIT_TOLERANCE_PTS: f64 = 1.0;
/// Weight-SRAM saving against 8-bit at V_min the low-bit-width check asks for, percent.
pub const LOW_BIT_SAVING_PCT: f64 = 30.0;
/// Widest precision counted as low by the check.
pub const LOW_BIT_MAX_BITS: u32 = 4;

/// Summary of a sweep for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub reference: Reference,
    pub points: Vec<SafePoint>,
    /// One per profile, in profile order.
    pub best: Vec<BestPoint>,
    /// One per profile; empty when the reference is not an 8-bit trained normal model (the check is then not
    /// defined).
    pub low_bit: Vec<LowBitCheck>,
    /// Fault samples (offsets × seeds) averaged per point and test images per sample: (min, max) over rows.
    pub samples: (u32, u32),
    pub test_images: (u32, u32),
    /// Whether any row is post-training quantized.
    pub any_ptq: bool,
    /// The rails comparison ([`compare_rails`]); empty when the sweep has one rail set.
    pub rails: Vec<RailsComparison>,
}

/// The lowest safe row of a series sorted by voltage descending: the last row of the leading run of rows within
/// `threshold` (docs/run-and-sweep.md#lowest-safe-voltage-report).
fn lowest_safe<'a>(series: &[&'a SweepRow], threshold: f64) -> Option<&'a SweepRow> {
    let mut safe = None;
    for r in series {
        if r.faulty_error_pct <= threshold {
            safe = Some(*r);
        } else {
            break;
        }
    }
    safe
}

/// Reference model and lowest safe voltage per (model, profile); `None` when `rows` is empty.
pub fn summarize(rows: &[SweepRow], tolerance_pts: f64) -> Option<Summary> {
    let first = rows.first()?;
    // The trained, unprotected normal model (an ECC sweep has it with and without ECC), 8-bit when there is one.
    let trained = |r: &&SweepRow| r.weights_source != "ptq" && r.is_unprotected();
    let normal = rows
        .iter()
        .filter(|r| r.method == "normal")
        .filter(trained)
        .find(|r| r.bits == 8)
        .or_else(|| {
            rows.iter()
                .filter(|r| r.method == "normal")
                .filter(trained)
                .max_by_key(|r| r.bits)
        })
        .or_else(|| rows.iter().find(|r| r.method == "normal"));
    let ref_row = normal.unwrap_or(first);
    let ref_model = ref_row.series();
    // Reference error: the reference model's highest-voltage point, averaged over profiles (equal when the
    // nominal voltage is fault-free, which the monotonicity tests check).
    let ref_rows: Vec<&SweepRow> = rows.iter().filter(|r| r.series() == ref_model).collect();
    let v_top = ref_rows
        .iter()
        .map(|r| r.vdd_v)
        .fold(f64::NEG_INFINITY, f64::max);
    let top: Vec<f64> = ref_rows
        .iter()
        .filter(|r| r.vdd_v == v_top)
        .map(|r| r.faulty_error_pct)
        .collect();
    let error_pct = top.iter().sum::<f64>() / top.len() as f64;
    let reference = Reference {
        model: ref_model,
        is_normal: normal.is_some(),
        bits: ref_row.bits,
        trained: ref_row.weights_source != "ptq",
        error_pct,
        threshold_pct: error_pct + tolerance_pts,
    };
    let low_threshold = error_pct + LOW_BIT_TOLERANCE_PTS;
    let mut points = Vec::new();
    let mut low_rows: Vec<SweepRow> = Vec::new();
    for ((model, profile), mut series) in super::plots::group_by_series(rows) {
        series.sort_by(|a, b| b.vdd_v.total_cmp(&a.vdd_v)); // highest voltage first
        let safe = lowest_safe(&series, reference.threshold_pct).cloned();
        if let Some(low) = lowest_safe(&series, low_threshold) {
            if low.bits <= LOW_BIT_MAX_BITS {
                // Every row at or above the lowest safe voltage is within the threshold (monotone rule).
                low_rows.extend(
                    series
                        .iter()
                        .filter(|r| r.vdd_v >= low.vdd_v)
                        .map(|r| (*r).clone()),
                );
            }
        }
        let top = series[0];
        points.push(SafePoint {
            model,
            family: top.family.clone(),
            method: top.method.clone(),
            bits: top.bits,
            weights_source: top.weights_source.clone(),
            profile,
            clean_error_pct: top.clean_error_pct,
            nominal_error_pct: top.faulty_error_pct,
            safe,
        });
    }
    // Order: profile, then models in the order they first appear in the rows.
    let order = |m: &str| {
        rows.iter()
            .position(|r| r.series() == m)
            .unwrap_or(usize::MAX)
    };
    points.sort_by(|a, b| {
        a.profile
            .cmp(&b.profile)
            .then(order(&a.model).cmp(&order(&b.model)))
    });
    let profiles = super::plots::distinct_profiles(rows);
    let best = profiles
        .iter()
        .map(|profile| BestPoint {
            profile: profile.clone(),
            row: points
                .iter()
                .filter(|p| &p.profile == profile)
                .filter_map(|p| p.safe.clone())
                .min_by(|a, b| {
                    a.energy_pj
                        .total_cmp(&b.energy_pj)
                        .then(a.weight_sram_energy_pj.total_cmp(&b.weight_sram_energy_pj))
                        .then(a.faulty_error_pct.total_cmp(&b.faulty_error_pct))
                }),
        })
        .collect();
    let defined = reference.is_normal && reference.trained && reference.bits == 8;
    let low_bit = if defined {
        profiles
            .iter()
            .map(|profile| {
                let best = low_rows
                    .iter()
                    .filter(|r| &r.profile == profile)
                    .max_by(|a, b| {
                        a.weight_sram_saving_vs_vmin_pct
                            .total_cmp(&b.weight_sram_saving_vs_vmin_pct)
                            .then(b.faulty_error_pct.total_cmp(&a.faulty_error_pct))
                    })
                    .cloned();
                LowBitCheck {
                    profile: profile.clone(),
                    threshold_pct: low_threshold,
                    meets_30_pct: best
                        .as_ref()
                        .is_some_and(|r| r.weight_sram_saving_vs_vmin_pct >= LOW_BIT_SAVING_PCT),
                    best,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let range = |f: fn(&SweepRow) -> u32| {
        rows.iter()
            .map(f)
            .fold((u32::MAX, 0), |(lo, hi), x| (lo.min(x), hi.max(x)))
    };
    let rails = compare_rails(rows, reference.threshold_pct);
    Some(Summary {
        reference,
        points,
        best,
        low_bit,
        samples: range(|r| r.samples),
        test_images: range(|r| r.test_images),
        any_ptq: rows.iter().any(|r| r.weights_source == "ptq"),
        rails,
    })
}

fn fmt_range((lo, hi): (u32, u32)) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}–{hi}")
    }
}

/// What the report says about how it was produced.
#[derive(Debug, Clone, Default)]
pub struct ReportContext {
    /// Title line (without `#`).
    pub title: String,
    /// The command line that produced the sweep.
    pub command: String,
    /// Free-text lines (hardware config, data set, samples), each rendered as a bullet.
    pub setup: Vec<String>,
    /// Plot file names relative to the report, with a caption each.
    pub plots: Vec<(String, String)>,
    /// The CSV file name relative to the report.
    pub csv: String,
}

fn fmt_energy(pj: f64) -> String {
    if pj >= 1e6 {
        format!("{:.3} µJ", pj / 1e6)
    } else if pj >= 1e3 {
        format!("{:.2} nJ", pj / 1e3)
    } else {
        format!("{pj:.1} pJ")
    }
}

/// Renders the Markdown report.
pub fn render(ctx: &ReportContext, summary: &Summary, tolerance_pts: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", ctx.title);
    if !ctx.command.is_empty() {
        let _ = writeln!(s, "Produced by `{}`.\n", ctx.command);
    }
    for line in &ctx.setup {
        let _ = writeln!(s, "- {line}");
    }
    if !ctx.setup.is_empty() {
        s.push('\n');
    }
    let r = &summary.reference;
    let ref_desc = if r.is_normal {
        format!("the {}-bit normal model ", r.bits)
    } else {
        "the first model (no `normal` model in the sweep) ".to_string()
    };
    let _ = writeln!(
        s,
        "Tolerance: test error at most **{:.2}%** = {:.2}% (error of {ref_desc}`{}` at its highest swept voltage) + {:.2} points. \
         The lowest safe voltage is the lowest swept voltage at which the mean faulty error, and the error at every \
         swept voltage above it, stays within the tolerance.\n",
        r.threshold_pct, r.error_pct, r.model, tolerance_pts
    );
    let _ = writeln!(
        s,
        "What the numbers are:\n\n\
         - **Energy scope.** *Energy* is per inference of the whole accelerator (weight SRAM dynamic + leakage, \
         activation buffers, MACs, DRAM; docs/energy.md). *Weight-SRAM energy* is the weight SRAM alone, the \
         scope of the paper's savings figures. Lower precision shrinks both: fewer weight-SRAM words and arrays \
         (with dense packing) and cheaper multipliers.\n\
         - **Two references.** *vs nominal*: the same model (same bit width) at the nominal voltage. \
         *vs 8-bit @ V_min*: the same network with 8-bit weights at V_min, the paper's reference point; a \
         saving there includes what the narrower width saves, not only the lower voltage.\n\
         - **Error source.** Faulty error = clean-or-faulty mistakes (docs/run-and-sweep.md#evaluation-protocol) \
         with the stored weight bits corrupted by the fault sources above; each point averages **{} fault \
         sample(s)** (mapping offsets × seeds) over **{} test images** each.{}\n",
        fmt_range(summary.samples),
        fmt_range(summary.test_images),
        if summary.any_ptq {
            " Models marked `ptq` are post-training quantized from their family's float weights \
             (docs/model-format.md#families), not trained at that width."
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "| profile | model | bits | weights | method | clean error (%) | error at nominal (%) | lowest safe V (V) | V/V_min | error there (%) | BER there | energy/inference there | energy saved vs nominal (%) | weight-SRAM saved vs nominal (%) | energy saved vs 8-bit @ V_min (%) | weight-SRAM saved vs 8-bit @ V_min (%) |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for p in &summary.points {
        match &p.safe {
            Some(row) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.3} | {:.3} | {:.2} ± {:.2} | {:.2e} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    p.profile,
                    p.model,
                    p.bits,
                    p.weights_source,
                    p.method,
                    p.clean_error_pct,
                    p.nominal_error_pct,
                    row.vdd_v,
                    row.vdd_rel,
                    row.faulty_error_pct,
                    row.faulty_error_std_pct,
                    row.ber,
                    fmt_energy(row.energy_pj),
                    row.energy_saving_pct,
                    row.weight_sram_saving_pct,
                    row.energy_saving_vs_vmin_pct,
                    row.weight_sram_saving_vs_vmin_pct
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {:.2} | {:.2} | — (above tolerance at every swept voltage) | — | — | — | — | — | — | — | — |",
                    p.profile, p.model, p.bits, p.weights_source, p.method, p.clean_error_pct, p.nominal_error_pct
                );
            }
        }
    }
    s.push('\n');
    render_best(&mut s, summary);
    s.push('\n');
    render_rails(&mut s, summary);
    for (file, caption) in &ctx.plots {
        let _ = writeln!(s, "## {caption}\n\n![{caption}]({file})\n");
    }
    if !ctx.csv.is_empty() {
        let _ = writeln!(
            s,
            "All points (one row per model × profile × voltage, units in the headers): [`{0}`]({0}).",
            ctx.csv
        );
    }
    s
}

/// The "Weights only vs weights and activations" section (only with more than one rail set).
fn render_rails(s: &mut String, summary: &Summary) {
    let Some(first) = summary.rails.first() else {
        return;
    };
    let base = &first.base_rails;
    let r = &summary.reference;
    let _ = writeln!(
        s,
        "## Weights only vs weights and activations\n\n\
         The sweep has several rail sets (the `rails` column: the rails that follow the swept voltage; with the \
         int8 datapath a scaled `activation_sram` rail's buffers fail like the weight SRAM, \
         docs/activation-faults.md). Per profile and model, each rail set's lowest safe voltage (error within \
         **{:.2}%**, at that voltage and every swept voltage above it, as above), its error and its energy there. \
         The weight faults are the same chips and mapping offsets for every rail set, so the rows differ only by \
         what the rails add.\n\n\
         - **Savings** are against the **nominal voltage** (every rail at its nominal voltage), the same \
         reference for every rail set, so they compare directly: *energy* is the whole accelerator per \
         inference, *weight SRAM* the weight SRAM alone (dynamic + leakage), *activation SRAM* the ifmap/ofmap \
         buffers alone (0 when their rail is not scaled). The 8-bit @ V_min reference of the tables above runs \
         each set's own rails at V_min, so it differs between rail sets and is not used here.\n\
         - **Energy vs `{base}`**: total energy per inference at the set's own lowest safe voltage against \
         `{base}` at its own (positive: the set uses less): what scaling the activation buffers buys.\n\
         - **Error at `{base}`'s V**: the set's error at the voltage where `{base}` is lowest safe: what \
         scaling the activation buffers costs in accuracy at the same voltage.\n\
         - Each point averages **{} fault sample(s)** (mapping offsets × seeds; the activation buffers' faults \
         are drawn per sample too) over **{} test images** each.\n",
        r.threshold_pct,
        fmt_range(summary.samples),
        fmt_range(summary.test_images),
    );
    let _ = writeln!(
        s,
        "| profile | model | bits | weights | rails | error at nominal (%) | lowest safe V (V) | error there (%) | activation BER there | energy/inference there | energy saved vs nominal (%) | weight-SRAM saved vs nominal (%) | activation-SRAM saved vs nominal (%) | energy vs `{base}` (%) | error at `{base}`'s V (%) | samples × images |"
    );
    let _ = writeln!(
        s,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for c in &summary.rails {
        for p in &c.sets {
            let at_base = p.at_base_v.as_ref().map_or("—".to_string(), |a| {
                format!("{:.2} ± {:.2}", a.faulty_error_pct, a.faulty_error_std_pct)
            });
            let vs_base = if p.rails == c.base_rails {
                "(reference)".to_string()
            } else {
                p.energy_vs_base_pct
                    .map_or("—".to_string(), |x| format!("{x:+.1}"))
            };
            let rails = if p.rails == c.base_rails {
                format!("`{}` (weights only)", p.rails)
            } else {
                format!("`{}`", p.rails)
            };
            match &p.safe {
                Some(row) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {rails} | {:.2} | {:.3} | {:.2} ± {:.2} | {:.2e} | {} | {:.1} | {:.1} | {:.1} | {vs_base} | {at_base} | {} × {} |",
                        c.profile,
                        c.model,
                        c.bits,
                        c.weights_source,
                        p.nominal_error_pct,
                        row.vdd_v,
                        row.faulty_error_pct,
                        row.faulty_error_std_pct,
                        row.activation_ber,
                        fmt_energy(row.energy_pj),
                        row.energy_saving_pct,
                        row.weight_sram_saving_pct,
                        row.activation_sram_saving_pct,
                        p.samples,
                        p.test_images
                    );
                }
                None => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} | {rails} | {:.2} | — (above tolerance at every swept voltage) | — | — | — | — | — | — | — | {at_base} | {} × {} |",
                        c.profile,
                        c.model,
                        c.bits,
                        c.weights_source,
                        p.nominal_error_pct,
                        p.samples,
                        p.test_images
                    );
                }
            }
        }
    }
    s.push('\n');
}

/// The "Best operating point" section (see the module docs).
fn render_best(s: &mut String, summary: &Summary) {
    let _ = writeln!(
        s,
        "## Best operating point\n\n\
         Per profile, the (bits, voltage, model) with the lowest total energy per inference among the lowest safe \
         points above (error within the tolerance at that voltage and every voltage above it).\n"
    );
    let _ = writeln!(
        s,
        "| profile | model | bits | weights | V (V) | error (%) | energy/inference | weight-SRAM energy | energy saved vs nominal (%) | weight-SRAM saved vs nominal (%) | energy saved vs 8-bit @ V_min (%) | weight-SRAM saved vs 8-bit @ V_min (%) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for b in &summary.best {
        match &b.row {
            Some(r) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {:.3} | {:.2} ± {:.2} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                    b.profile,
                    r.model,
                    r.bits,
                    r.weights_source,
                    r.vdd_v,
                    r.faulty_error_pct,
                    r.faulty_error_std_pct,
                    fmt_energy(r.energy_pj),
                    fmt_energy(r.weight_sram_energy_pj),
                    r.energy_saving_pct,
                    r.weight_sram_saving_pct,
                    r.energy_saving_vs_vmin_pct,
                    r.weight_sram_saving_vs_vmin_pct
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "| {} | — (no model within the tolerance at any swept voltage) | | | | | | | | | | |",
                    b.profile
                );
            }
        }
    }
    s.push('\n');
    let r = &summary.reference;
    if summary.low_bit.is_empty() {
        let _ = writeln!(
            s,
            "**≤ {LOW_BIT_MAX_BITS}-bit check** (within {LOW_BIT_TOLERANCE_PTS} point of the 8-bit normal model at \
             ≥ {LOW_BIT_SAVING_PCT:.0}% weight-SRAM energy below 8-bit weights at V_min): not answered, the sweep \
             has no trained 8-bit `normal` model (reference here: `{}`).\n",
            r.model
        );
        return;
    }
    let _ = writeln!(
        s,
        "**≤ {LOW_BIT_MAX_BITS}-bit check**: does a model of at most {LOW_BIT_MAX_BITS} bits stay within \
         {LOW_BIT_TOLERANCE_PTS} point of the 8-bit normal model (`{}`, {:.2}% at its highest voltage) at \
         ≥ {LOW_BIT_SAVING_PCT:.0}% less weight-SRAM energy than 8-bit weights at V_min? (Same monotone rule as \
         above: within the threshold at that voltage and every swept voltage above it.)\n",
        r.model, r.error_pct
    );
    for c in &summary.low_bit {
        match &c.best {
            Some(row) => {
                let _ = writeln!(
                    s,
                    "- {}: **{}**. Largest weight-SRAM saving within {:.2}%: `{}` ({} bits, {}) at {:.3} V, error \
                     {:.2}% ± {:.2}, weight-SRAM energy {:.1}% below 8-bit @ V_min ({:.1}% below its own nominal), \
                     total energy {:.1}% below 8-bit @ V_min.",
                    c.profile,
                    if c.meets_30_pct { "yes" } else { "no" },
                    c.threshold_pct,
                    row.model,
                    row.bits,
                    row.weights_source,
                    row.vdd_v,
                    row.faulty_error_pct,
                    row.faulty_error_std_pct,
                    row.weight_sram_saving_vs_vmin_pct,
                    row.weight_sram_saving_pct,
                    row.energy_saving_vs_vmin_pct
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "- {}: **no**: no model of at most {LOW_BIT_MAX_BITS} bits is within {:.2}% even at its \
                     highest swept voltage.",
                    c.profile, c.threshold_pct
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "\nThe saving against 8-bit @ V_min counts the narrower words as well as the lower voltage (with dense \
         packing a 4-bit model reads half the words of an 8-bit one at any voltage); the saving against the \
         model's own nominal voltage is the voltage's part alone.\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::row::synthetic;

    #[test]
    fn lowest_safe_voltage_follows_the_definition() {
        let rows = synthetic::rows();
        let sum = summarize(&rows, 1.0).unwrap();
        assert_eq!(sum.reference.model, "fmnist-normal-8b");
        assert!(sum.reference.is_normal);
        assert!((sum.reference.threshold_pct - (sum.reference.error_pct + 1.0)).abs() < 1e-12);
        assert_eq!(sum.points.len(), 8);
        for p in &sum.points {
            let mut series: Vec<&SweepRow> = rows
                .iter()
                .filter(|r| r.model == p.model && r.profile == p.profile)
                .collect();
            series.sort_by(|a, b| b.vdd_v.total_cmp(&a.vdd_v));
            // Slow reference: every voltage ≥ the safe one is within the threshold, the next one below is not.
            match &p.safe {
                Some(safe) => {
                    for r in &series {
                        if r.vdd_v >= safe.vdd_v {
                            assert!(r.faulty_error_pct <= sum.reference.threshold_pct);
                        }
                    }
                    if let Some(below) = series.iter().find(|r| r.vdd_v < safe.vdd_v) {
                        assert!(below.faulty_error_pct > sum.reference.threshold_pct);
                    }
                }
                None => assert!(series[0].faulty_error_pct > sum.reference.threshold_pct),
            }
        }
        // The more robust model reaches a lower voltage than the normal one.
        let v = |m: &str| {
            sum.points
                .iter()
                .find(|p| p.model == m && p.profile == "chip1")
                .unwrap()
                .safe
                .as_ref()
                .unwrap()
                .vdd_v
        };
        assert!(v("fmnist-randbet-8b") < v("fmnist-normal-8b"));
    }

    #[test]
    fn non_monotone_series_stops_at_first_violation() {
        let mut rows = synthetic::rows();
        rows.retain(|r| r.model == "fmnist-randbet-8b" && r.profile == "chip1");
        for r in rows.iter_mut() {
            r.method = "normal".into();
        }
        // Make one mid voltage exceed the threshold: the safe voltage must stay above it.
        let threshold = rows[0].faulty_error_pct + 1.0;
        rows[3].faulty_error_pct = threshold + 5.0;
        let sum = summarize(&rows, 1.0).unwrap();
        let safe = sum.points[0].safe.as_ref().unwrap();
        assert!(safe.vdd_v > rows[3].vdd_v);
    }

    #[test]
    fn render_has_table_and_plots() {
        let rows = synthetic::rows();
        let sum = summarize(&rows, 1.0).unwrap();
        let ctx = ReportContext {
            title: "sweep".into(),
            command: "accelsim sweep".into(),
            setup: vec!["hw: 14nm".into()],
            plots: vec![("error_vs_voltage.png".into(), "Error vs voltage".into())],
            csv: "sweep.csv".into(),
        };
        let md = render(&ctx, &sum, 1.0);
        assert!(md.contains("![Error vs voltage](error_vs_voltage.png)"));
        let (safe_table, best) = md.split_once("## Best operating point").unwrap();
        assert_eq!(
            safe_table
                .lines()
                .filter(|l| l.starts_with("| chip"))
                .count(),
            8
        );
        assert_eq!(best.lines().filter(|l| l.starts_with("| chip")).count(), 2);
        assert!(md.contains("fmnist-randbet-4b"));
        for needle in [
            "Energy scope",
            "vs 8-bit @ V_min",
            "**4 fault sample(s)**",
            "**1000 test images**",
            "≤ 4-bit check",
        ] {
            assert!(md.contains(needle), "{needle}");
        }
    }

    #[test]
    fn best_point_and_low_bit_check_follow_their_definitions() {
        let rows = synthetic::rows();
        let sum = summarize(&rows, 1.0).unwrap();
        assert_eq!(sum.reference.bits, 8);
        assert!(sum.reference.is_normal && sum.reference.trained);
        for b in &sum.best {
            // Slow reference: every (model, profile) series' lowest safe row, then the lowest total energy.
            let mut candidates = Vec::new();
            for p in sum.points.iter().filter(|p| p.profile == b.profile) {
                let mut series: Vec<&SweepRow> = rows
                    .iter()
                    .filter(|r| r.model == p.model && r.profile == p.profile)
                    .collect();
                series.sort_by(|a, b| b.vdd_v.total_cmp(&a.vdd_v));
                let k = series
                    .iter()
                    .take_while(|r| r.faulty_error_pct <= sum.reference.threshold_pct)
                    .count();
                if k > 0 {
                    candidates.push(series[k - 1]);
                }
            }
            let want = candidates
                .iter()
                .map(|r| r.energy_pj)
                .fold(f64::INFINITY, f64::min);
            let got = b.row.as_ref().unwrap();
            assert_eq!(got.energy_pj, want);
            assert!(got.faulty_error_pct <= sum.reference.threshold_pct);
        }
        // The synthetic 4-bit model's clean error (9.6%) is 1.6 points above the normal one (8.0%): no.
        assert_eq!(sum.low_bit.len(), 2);
        assert!(sum
            .low_bit
            .iter()
            .all(|c| c.best.is_none() && !c.meets_30_pct));
        let mut rows = rows;
        for r in rows.iter_mut().filter(|r| r.bits == 4) {
            r.clean_error_pct -= 1.2;
            r.faulty_error_pct -= 1.2;
        }
        let sum = summarize(&rows, 1.0).unwrap();
        for c in &sum.low_bit {
            assert!((c.threshold_pct - (sum.reference.error_pct + 1.0)).abs() < 1e-12);
            let best = c
                .best
                .as_ref()
                .expect("the 4-bit RandBET series is within 1 point near V_min");
            assert!(best.bits <= 4 && best.faulty_error_pct <= c.threshold_pct);
            // Slow reference: no qualifying ≤4-bit row (monotone) saves more against 8-bit at V_min.
            let mut series: Vec<&SweepRow> = rows
                .iter()
                .filter(|r| r.bits <= 4 && r.profile == c.profile)
                .collect();
            series.sort_by(|a, b| b.vdd_v.total_cmp(&a.vdd_v));
            let ok: Vec<&&SweepRow> = series
                .iter()
                .take_while(|r| r.faulty_error_pct <= c.threshold_pct)
                .collect();
            let max = ok
                .iter()
                .map(|r| r.weight_sram_saving_vs_vmin_pct)
                .fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(best.weight_sram_saving_vs_vmin_pct, max);
            assert_eq!(c.meets_30_pct, max >= 30.0);
        }
        // Without an 8-bit normal model the check is not defined.
        let no_normal: Vec<SweepRow> = rows
            .iter()
            .filter(|r| r.method != "normal")
            .cloned()
            .collect();
        assert!(summarize(&no_normal, 1.0).unwrap().low_bit.is_empty());
        // A PTQ 8-bit normal model listed first (and better) is not the reference when a trained one exists.
        let ptq: Vec<SweepRow> = rows
            .iter()
            .filter(|r| r.method == "normal")
            .map(|r| SweepRow {
                model: "normal-ptq".into(),
                weights_source: "ptq".into(),
                faulty_error_pct: 1.0,
                ..r.clone()
            })
            .collect();
        let with_ptq: Vec<SweepRow> = ptq.into_iter().chain(rows.iter().cloned()).collect();
        assert_eq!(
            summarize(&with_ptq, 1.0).unwrap().reference.model,
            "fmnist-normal-8b"
        );
        assert!(summarize(&with_ptq, 1.0).unwrap().reference.trained);
    }

    /// Synthetic rows of two rail sets: the activation rail adds errors and saves energy below nominal.
    fn two_rail_sets() -> Vec<SweepRow> {
        let mut rows = synthetic::rows();
        let both: Vec<SweepRow> = rows
            .iter()
            .map(|r| SweepRow {
                rails: "weight_sram+activation_sram".into(),
                faulty_error_pct: r.faulty_error_pct + r.ber * 5000.0,
                energy_pj: r.energy_pj * (0.9 + 0.1 * r.vdd_rel * r.vdd_rel),
                activation_sram_saving_pct: 100.0 * (1.0 - r.vdd_rel * r.vdd_rel),
                ..r.clone()
            })
            .collect();
        rows.extend(both);
        crate::report::row::mark_rails_axis(&mut rows);
        rows
    }

    #[test]
    fn rails_comparison_follows_its_definition() {
        assert!(summarize(&synthetic::rows(), 1.0).unwrap().rails.is_empty());
        let md = render(
            &ReportContext::default(),
            &summarize(&synthetic::rows(), 1.0).unwrap(),
            1.0,
        );
        assert!(!md.contains("Weights only vs weights and activations"));
        let rows = two_rail_sets();
        let sum = summarize(&rows, 1.0).unwrap();
        // Each rail set is its own curve in the lowest-safe table.
        assert_eq!(sum.points.len(), 16);
        assert!(sum
            .points
            .iter()
            .any(|p| p.model == "fmnist-randbet-8b @ weight_sram+activation_sram"));
        assert_eq!(sum.reference.model, "fmnist-normal-8b @ weight_sram");
        assert_eq!(sum.rails.len(), 8);
        for c in &sum.rails {
            assert_eq!(c.base_rails, "weight_sram");
            assert_eq!(c.sets.len(), 2);
            let (w, b) = (&c.sets[0], &c.sets[1]);
            assert_eq!(w.rails, "weight_sram");
            // Slow reference: the lowest safe voltage of each set, from its own rows.
            for p in [w, b] {
                let mut series: Vec<&SweepRow> = rows
                    .iter()
                    .filter(|r| r.profile == c.profile && r.model == c.model && r.rails == p.rails)
                    .collect();
                series.sort_by(|a, b| b.vdd_v.total_cmp(&a.vdd_v));
                let k = series
                    .iter()
                    .take_while(|r| r.faulty_error_pct <= sum.reference.threshold_pct)
                    .count();
                assert_eq!(
                    p.safe.as_ref().map(|r| r.vdd_v),
                    k.checked_sub(1).map(|i| series[i].vdd_v)
                );
            }
            // More errors with the activation rail: never a lower safe voltage.
            if let (Some(ws), Some(bs)) = (&w.safe, &b.safe) {
                assert!(bs.vdd_v >= ws.vdd_v);
                let want = (1.0 - bs.energy_pj / ws.energy_pj) * 100.0;
                assert!((b.energy_vs_base_pct.unwrap() - want).abs() < 1e-9);
                let at = b.at_base_v.as_ref().unwrap();
                assert_eq!(at.vdd_v, ws.vdd_v);
                assert!(at.faulty_error_pct >= ws.faulty_error_pct);
            }
        }
        let md = render(&ReportContext::default(), &sum, 1.0);
        let (_, section) = md
            .split_once("## Weights only vs weights and activations")
            .unwrap();
        let section = section.split("\n## ").next().unwrap();
        assert_eq!(
            section.lines().filter(|l| l.starts_with("| chip")).count(),
            16
        );
        for needle in [
            "`weight_sram` (weights only)",
            "**4 fault sample(s)**",
            "**1000 test images**",
            "| 4 × 1000 |",
        ] {
            assert!(section.contains(needle), "{needle}");
        }
    }
}
