//! Plots of a sweep (plotters; each written as PNG and SVG with the embedded font, see [`super::fonts`]):
//!
//! - [`error_vs_voltage`]: faulty test error (mean ± std over samples) against the weight-SRAM voltage, one line
//!   per model, one panel per fault profile;
//! - [`energy_vs_voltage`]: total and weight-SRAM energy per inference against voltage, one line per distinct
//!   curve (models with identical energy, e.g. the same network at the same bit width, share a line);
//! - [`tradeoff`]: the accuracy–energy trade-off, every (model, voltage) point of a profile with the Pareto front
//!   (lowest error for at most that energy) across models.
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{ReportError, SweepRow};

/// Pixel size of every plot (SVG uses the same user units).
pub const PLOT_SIZE: (u32, u32) = (1200, 520);

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// Files written for one plot.
#[derive(Debug, Clone)]
pub struct PlotFiles {
    pub png: PathBuf,
    pub svg: PathBuf,
}

/// Distinct values in first-seen order.
fn distinct<'a>(it: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in it {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

/// Rows of one (model, profile), sorted by voltage ascending.
fn series<'a>(rows: &'a [SweepRow], model: &str, profile: &str) -> Vec<&'a SweepRow> {
    let mut s: Vec<&SweepRow> = rows
        .iter()
        .filter(|r| r.model == model && r.profile == profile)
        .collect();
    s.sort_by(|a, b| a.vdd_v.total_cmp(&b.vdd_v));
    s
}

fn range_with_margin(lo: f64, hi: f64, rel: f64) -> (f64, f64) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    let span = if hi > lo { hi - lo } else { hi.abs().max(1e-3) };
    (lo - rel * span, hi + rel * span)
}

/// Picks a readable energy unit for values up to `max_pj`: (divisor from pJ, label).
fn energy_unit(max_pj: f64) -> (f64, &'static str) {
    if max_pj >= 1e6 {
        (1e6, "µJ")
    } else if max_pj >= 1e3 {
        (1e3, "nJ")
    } else {
        (1.0, "pJ")
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Renders `draw` into `<stem>.png` and `<stem>.svg` under `dir`.
fn render(
    dir: &Path,
    stem: &str,
    draw_png: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> DrawResult,
    draw_svg: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> DrawResult,
) -> Result<PlotFiles, ReportError> {
    super::fonts::register().map_err(|msg| ReportError::Plot {
        path: dir.join(stem),
        msg,
    })?;
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let perr = |path: &Path, e: Box<dyn std::error::Error>| ReportError::Plot {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    // Both go through a temporary name and a rename, so a killed run never leaves a truncated plot.
    let png_tmp = dir.join(format!(".{stem}.tmp{}.png", std::process::id()));
    let svg_tmp = dir.join(format!(".{stem}.tmp{}.svg", std::process::id()));
    {
        let root = BitMapBackend::new(&png_tmp, PLOT_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&png, e.into()))?;
        draw_png(&root).map_err(|e| perr(&png, e))?;
        root.present().map_err(|e| perr(&png, e.into()))?;
    }
    {
        let root = SVGBackend::new(&svg_tmp, PLOT_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&svg, e.into()))?;
        draw_svg(&root).map_err(|e| perr(&svg, e))?;
        root.present().map_err(|e| perr(&svg, e.into()))?;
    }
    for (tmp, dst) in [(&png_tmp, &png), (&svg_tmp, &svg)] {
        std::fs::rename(tmp, dst).map_err(|source| ReportError::Io {
            path: dst.clone(),
            source,
        })?;
    }
    Ok(PlotFiles { png, svg })
}

fn draw_error_vs_voltage<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[SweepRow],
    tolerance_pct: Option<f64>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let profiles = distinct(rows.iter().map(|r| r.profile.as_str()));
    let models = distinct(rows.iter().map(|r| r.model.as_str()));
    let (x0, x1) = range_with_margin(
        rows.iter().map(|r| r.vdd_v).fold(f64::INFINITY, f64::min),
        rows.iter()
            .map(|r| r.vdd_v)
            .fold(f64::NEG_INFINITY, f64::max),
        0.03,
    );
    let y_max = rows
        .iter()
        .map(|r| r.faulty_error_pct + r.faulty_error_std_pct)
        .fold(0.0, f64::max)
        .max(tolerance_pct.unwrap_or(0.0))
        .min(100.0)
        * 1.05
        + 0.5;
    let panels = root.split_evenly((1, profiles.len().max(1)));
    for (panel, profile) in panels.iter().zip(&profiles) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("test error vs voltage ({profile})"),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("weight SRAM supply voltage (V)")
            .y_desc("test error (%), mean ± std")
            .label_style(("sans-serif", 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        if let Some(t) = tolerance_pct {
            chart
                .draw_series(LineSeries::new(
                    [(x0, t), (x1, t)],
                    BLACK.mix(0.4).stroke_width(1),
                ))?
                .label(format!("tolerance {t:.2}%"))
                .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK.mix(0.4)));
        }
        for (i, model) in models.iter().enumerate() {
            let s = series(rows, model, profile);
            if s.is_empty() {
                continue;
            }
            let c = color(i);
            chart
                .draw_series(LineSeries::new(
                    s.iter().map(|r| (r.vdd_v, r.faulty_error_pct)),
                    c.stroke_width(2),
                ))?
                .label(model.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
            chart.draw_series(
                s.iter()
                    .map(|r| Circle::new((r.vdd_v, r.faulty_error_pct), 3, c.filled())),
            )?;
            chart.draw_series(s.iter().filter(|r| r.faulty_error_std_pct > 0.0).map(|r| {
                PathElement::new(
                    [
                        (
                            r.vdd_v,
                            (r.faulty_error_pct - r.faulty_error_std_pct).max(0.0),
                        ),
                        (r.vdd_v, r.faulty_error_pct + r.faulty_error_std_pct),
                    ],
                    c.stroke_width(1),
                )
            }))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    Ok(())
}

fn draw_energy_vs_voltage<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[SweepRow],
    _unused: Option<f64>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let models = distinct(rows.iter().map(|r| r.model.as_str()));
    let max_pj = rows.iter().map(|r| r.energy_pj).fold(0.0, f64::max);
    let (div, unit) = energy_unit(max_pj);
    let (x0, x1) = range_with_margin(
        rows.iter().map(|r| r.vdd_v).fold(f64::INFINITY, f64::min),
        rows.iter()
            .map(|r| r.vdd_v)
            .fold(f64::NEG_INFINITY, f64::max),
        0.03,
    );
    let mut chart = ChartBuilder::on(root)
        .caption(
            "energy per inference vs weight SRAM voltage",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..(max_pj / div * 1.1).max(1e-9))?;
    chart
        .configure_mesh()
        .x_desc("weight SRAM supply voltage (V)")
        .y_desc(format!("energy per inference ({unit})"))
        .label_style(("sans-serif", 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    // Energy does not depend on the fault profile (take each model's first profile), and models with the same
    // layers and bit width have identical curves: draw each distinct curve once, labelled with all its models.
    let mut curves: Vec<(Vec<String>, Vec<&SweepRow>)> = Vec::new();
    for model in &models {
        let Some(profile) = rows
            .iter()
            .find(|r| &r.model == model)
            .map(|r| r.profile.clone())
        else {
            continue;
        };
        let s = series(rows, model, &profile);
        let same = |a: &[&SweepRow]| {
            a.len() == s.len()
                && a.iter().zip(&s).all(|(x, y)| {
                    x.vdd_v == y.vdd_v
                        && x.energy_pj == y.energy_pj
                        && x.weight_sram_energy_pj == y.weight_sram_energy_pj
                })
        };
        match curves.iter_mut().find(|(_, c)| same(c)) {
            Some((names, _)) => names.push(model.clone()),
            None => curves.push((vec![model.clone()], s)),
        }
    }
    for (i, (names, s)) in curves.iter().enumerate() {
        let c = color(i);
        let label = names.join(", ");
        chart
            .draw_series(LineSeries::new(
                s.iter().map(|r| (r.vdd_v, r.energy_pj / div)),
                c.stroke_width(2),
            ))?
            .label(format!("{label}: total"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], c.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                s.iter().map(|r| (r.vdd_v, r.weight_sram_energy_pj / div)),
                c.mix(0.5).stroke_width(1),
            ))?
            .label(format!("{label}: weight SRAM"))
            .legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 18, y)], c.mix(0.5).stroke_width(1))
            });
        chart.draw_series(
            s.iter()
                .map(|r| Circle::new((r.vdd_v, r.energy_pj / div), 3, c.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .draw()?;
    Ok(())
}

/// Pareto front of (energy, error) points: the points for which no other point has both lower-or-equal energy
/// and strictly lower error. Returned sorted by energy ascending (error then strictly decreasing).
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = points
        .iter()
        .copied()
        .filter(|(e, r)| e.is_finite() && r.is_finite())
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut front: Vec<(f64, f64)> = Vec::new();
    for p in sorted {
        if front.last().is_none_or(|last| p.1 < last.1) {
            front.push(p);
        }
    }
    front
}

fn draw_tradeoff<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[SweepRow],
    _unused: Option<f64>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let profiles = distinct(rows.iter().map(|r| r.profile.as_str()));
    let models = distinct(rows.iter().map(|r| r.model.as_str()));
    let max_pj = rows.iter().map(|r| r.energy_pj).fold(0.0, f64::max);
    let (div, unit) = energy_unit(max_pj);
    let (x0, x1) = range_with_margin(
        rows.iter()
            .map(|r| r.energy_pj / div)
            .fold(f64::INFINITY, f64::min),
        max_pj / div,
        0.05,
    );
    let y_max = rows
        .iter()
        .map(|r| r.faulty_error_pct)
        .fold(0.0, f64::max)
        .min(100.0)
        * 1.05
        + 0.5;
    let panels = root.split_evenly((1, profiles.len().max(1)));
    for (panel, profile) in panels.iter().zip(&profiles) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("accuracy–energy trade-off ({profile})"),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc(format!("energy per inference ({unit})"))
            .y_desc("test error (%)")
            .label_style(("sans-serif", 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        let mut all = Vec::new();
        for (i, model) in models.iter().enumerate() {
            let s = series(rows, model, profile);
            let c = color(i);
            let pts: Vec<(f64, f64)> = s
                .iter()
                .map(|r| (r.energy_pj / div, r.faulty_error_pct))
                .collect();
            all.extend_from_slice(&pts);
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?
                .label(model.as_str())
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        let front = pareto_front(&all);
        chart
            .draw_series(LineSeries::new(front, BLACK.stroke_width(1)))?
            .label("Pareto front")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], BLACK));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    Ok(())
}

fn check_rows(rows: &[SweepRow]) -> Result<(), ReportError> {
    if rows.is_empty() {
        Err(ReportError::Empty)
    } else {
        Ok(())
    }
}

/// Error against voltage (`error_vs_voltage.{png,svg}` in `dir`); `tolerance_pct` draws a horizontal line.
pub fn error_vs_voltage(
    dir: &Path,
    rows: &[SweepRow],
    tolerance_pct: Option<f64>,
) -> Result<PlotFiles, ReportError> {
    check_rows(rows)?;
    render(
        dir,
        "error_vs_voltage",
        |r| draw_error_vs_voltage(r, rows, tolerance_pct),
        |r| draw_error_vs_voltage(r, rows, tolerance_pct),
    )
}

/// Energy per inference against voltage (`energy_vs_voltage.{png,svg}` in `dir`).
pub fn energy_vs_voltage(dir: &Path, rows: &[SweepRow]) -> Result<PlotFiles, ReportError> {
    check_rows(rows)?;
    render(
        dir,
        "energy_vs_voltage",
        |r| draw_energy_vs_voltage(r, rows, None),
        |r| draw_energy_vs_voltage(r, rows, None),
    )
}

/// Accuracy–energy trade-off with the Pareto front (`tradeoff.{png,svg}` in `dir`).
pub fn tradeoff(dir: &Path, rows: &[SweepRow]) -> Result<PlotFiles, ReportError> {
    check_rows(rows)?;
    render(
        dir,
        "tradeoff",
        |r| draw_tradeoff(r, rows, None),
        |r| draw_tradeoff(r, rows, None),
    )
}

/// The profiles of `rows` in first-seen order.
pub fn distinct_profiles(rows: &[SweepRow]) -> Vec<String> {
    distinct(rows.iter().map(|r| r.profile.as_str()))
}

/// Group rows by (model, profile) in first-seen order, for callers that need per-series views.
pub fn group_by_series(rows: &[SweepRow]) -> BTreeMap<(String, String), Vec<&SweepRow>> {
    let mut m: BTreeMap<(String, String), Vec<&SweepRow>> = BTreeMap::new();
    for r in rows {
        m.entry((r.model.clone(), r.profile.clone()))
            .or_default()
            .push(r);
    }
    m
}
