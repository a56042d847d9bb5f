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
    let trained = |r: &&SweepRow| r.weights_source != "ptq" && r.series() == r.model;
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
    Some(Summary {
        reference,
        points,
        best,
        low_bit,
        samples: range(|r| r.samples),
        test_images: range(|r| r.test_images),
        any_ptq: rows.iter().any(|r| r.weights_source == "ptq"),
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
}
