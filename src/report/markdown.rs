//! The Markdown report of a sweep: embeds the plots and states, per model and profile, the lowest voltage whose
//! test error stays within a tolerance and the energy saved there.
//!
//! Definitions (docs/run-and-sweep.md):
//! - reference error = the faulty error of the reference model at its highest swept voltage (the nominal point,
//!   where it equals the clean error); the reference model is the one trained with method `normal` (else the
//!   first model of the sweep, and the report says so);
//! - threshold = reference error + `tolerance_pts` (default 1 percentage point);
//! - lowest safe voltage of a (model, profile) = the lowest swept voltage v such that the mean faulty error at v
//!   **and at every swept voltage above v** is ≤ threshold (robustness must hold all the way down, docs/run-and-sweep.md#evaluation-protocol).
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
    pub error_pct: f64,
    pub threshold_pct: f64,
}

/// Lowest-safe-voltage result of one (model, profile) series.
#[derive(Debug, Clone, PartialEq)]
pub struct SafePoint {
    pub model: String,
    pub method: String,
    pub bits: u32,
    pub profile: String,
    pub clean_error_pct: f64,
    /// Faulty error at the highest swept voltage.
    pub nominal_error_pct: f64,
    /// The lowest safe grid point, or `None` when even the highest voltage exceeds the threshold.
    pub safe: Option<SweepRow>,
}

/// Summary of a sweep for the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub reference: Reference,
    pub points: Vec<SafePoint>,
}

/// Reference model and lowest safe voltage per (model, profile); `None` when `rows` is empty.
pub fn summarize(rows: &[SweepRow], tolerance_pts: f64) -> Option<Summary> {
    let first = rows.first()?;
    // The unprotected normal model when there is one (an ECC sweep has it with and without ECC).
    let normal = rows
        .iter()
        .find(|r| r.method == "normal" && r.series() == r.model)
        .or_else(|| rows.iter().find(|r| r.method == "normal"));
    let ref_model = normal.unwrap_or(first).series();
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
        error_pct,
        threshold_pct: error_pct + tolerance_pts,
    };
    let mut points = Vec::new();
    for ((model, profile), mut series) in super::plots::group_by_series(rows) {
        series.sort_by(|a, b| b.vdd_v.total_cmp(&a.vdd_v)); // highest voltage first
        let mut safe = None;
        for r in &series {
            if r.faulty_error_pct <= reference.threshold_pct {
                safe = Some((*r).clone());
            } else {
                break;
            }
        }
        let top = series[0];
        points.push(SafePoint {
            model,
            method: top.method.clone(),
            bits: top.bits,
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
    Some(Summary { reference, points })
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
    let _ = writeln!(
        s,
        "Tolerance: test error at most **{:.2}%** = {:.2}% (error of {}`{}` at its highest swept voltage) + {:.2} points. \
         The lowest safe voltage is the lowest swept voltage at which the mean faulty error, and the error at every \
         swept voltage above it, stays within the tolerance.\n",
        r.threshold_pct,
        r.error_pct,
        if r.is_normal { "the normal model " } else { "the first model (no `normal` model in the sweep) " },
        r.model,
        tolerance_pts
    );
    let _ = writeln!(
        s,
        "| profile | model | bits | method | clean error (%) | error at nominal (%) | lowest safe V (V) | V/V_min | error there (%) | BER there | energy/inference there | energy saved (%) | weight-SRAM energy saved (%) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in &summary.points {
        match &p.safe {
            Some(row) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {:.2} | {:.2} | {:.3} | {:.3} | {:.2} ± {:.2} | {:.2e} | {} | {:.1} | {:.1} |",
                    p.profile,
                    p.model,
                    p.bits,
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
                    row.weight_sram_saving_pct
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {:.2} | {:.2} | — (above tolerance at every swept voltage) | — | — | — | — | 0.0 | 0.0 |",
                    p.profile, p.model, p.bits, p.method, p.clean_error_pct, p.nominal_error_pct
                );
            }
        }
    }
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
        assert_eq!(md.lines().filter(|l| l.starts_with("| chip")).count(), 8);
        assert!(md.contains("fmnist-randbet-4b"));
    }
}
