//! Plots of a sweep (plotters; each written as PNG and SVG with the embedded font, see [`super::fonts`]):
//!
//! - [`error_vs_voltage`]: faulty test error (mean ± std over samples) against the weight-SRAM voltage, one line
//!   per model, one panel per fault profile;
//! - [`energy_vs_voltage`]: total and weight-SRAM energy per inference against voltage, one line per distinct
//!   curve (models with identical energy, e.g. the same network at the same bit width, share a line);
//! - [`tradeoff`]: the accuracy–energy trade-off, every (model, bits, voltage) point of a profile, one colour per
//!   bit width and one marker per family, points labelled by voltage, with the Pareto front (lowest error for at
//!   most that energy) across all of them;
//! - [`heatmap_error`] and [`heatmap_energy`]: faulty error and energy saved over (voltage, bits), one panel per
//!   family (and profile, for the error).
//!
//! Error axes are clipped near the tolerance ([`error_axis`]) so that the interesting region (a few points around
//! the threshold) is readable; points above the axis are drawn as ▲ at the top edge with their value.
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

/// The distinct curves ([`SweepRow::series`]: model, plus its ECC scheme) in first-seen order.
fn series_names(rows: &[SweepRow]) -> Vec<String> {
    let names: Vec<String> = rows.iter().map(|r| r.series()).collect();
    distinct(names.iter().map(|s| s.as_str()))
}

/// Rows of one (series, profile), sorted by voltage ascending.
fn series<'a>(rows: &'a [SweepRow], model: &str, profile: &str) -> Vec<&'a SweepRow> {
    let mut s: Vec<&SweepRow> = rows
        .iter()
        .filter(|r| r.series() == model && r.profile == profile)
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

/// The error axis `[lo, hi]` (percent) of the error plots: from just below the lowest error to the tolerance
/// plus `max(3 points, tolerance − lo)`, or to just above the highest error when that is lower. Errors above
/// `hi` are drawn as out-of-range markers.
pub fn error_axis(errors: impl Iterator<Item = f64>, tolerance_pct: Option<f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for e in errors.filter(|e| e.is_finite()) {
        lo = lo.min(e);
        hi = hi.max(e);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let lo = (((lo - 0.3) * 2.0).floor() / 2.0).max(0.0);
    let top_all = hi + 0.05 * (hi - lo) + 0.3;
    let top = match tolerance_pct {
        Some(t) if t.is_finite() => top_all.min(t + (t - lo).max(3.0)).max(t + 0.5),
        _ => top_all,
    };
    (lo, top.min(100.0).max(lo + 1.0))
}

/// Draws `(x, y)` points above the axis top `hi` as ▲ markers at the top edge; with `label`, the highest of
/// them gets its value as text (one label per call keeps the edge readable).
fn draw_out_of_range<DB: DrawingBackend>(
    chart: &mut ChartContext<
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    points: &[(f64, f64)],
    hi: f64,
    c: RGBColor,
    labelled: Option<&mut Vec<f64>>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let y_lo = chart.y_range().start;
    let edge = hi - 0.03 * (hi - y_lo);
    let above: Vec<(f64, f64)> = points.iter().copied().filter(|p| p.1 > hi).collect();
    chart.draw_series(
        above
            .iter()
            .map(|&(x, _)| TriangleMarker::new((x, edge), 6, c.filled())),
    )?;
    if let (Some(&(x, y)), Some(used)) = (above.iter().max_by(|a, b| a.1.total_cmp(&b.1)), labelled)
    {
        // Labels of several series at one voltage stack downwards instead of overlapping.
        let below = used.iter().filter(|&&u| u == x).count() as i32;
        used.push(x);
        chart.draw_series(std::iter::once(
            EmptyElement::at((x, edge))
                + Text::new(
                    format!("{y:.0}%"),
                    (6, 2 + 13 * below),
                    ("sans-serif", 12).into_font().color(&c),
                ),
        ))?;
    }
    Ok(())
}

/// Renders `draw` into `<stem>.png` and `<stem>.svg` under `dir`.
fn render(
    dir: &Path,
    stem: &str,
    size: (u32, u32),
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
        let root = BitMapBackend::new(&png_tmp, size).into_drawing_area();
        root.fill(&WHITE).map_err(|e| perr(&png, e.into()))?;
        draw_png(&root).map_err(|e| perr(&png, e))?;
        root.present().map_err(|e| perr(&png, e.into()))?;
    }
    {
        let root = SVGBackend::new(&svg_tmp, size).into_drawing_area();
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

/// How a model's series is drawn: one colour per model when the rows hold one bit width, else one colour per
/// width and one marker per family (as the trade-off plot); the side legend lists what the styles mean.
struct SeriesStyles {
    by_width: bool,
    any_ptq: bool,
    models: Vec<String>,
    families: Vec<String>,
    widths: Vec<u32>,
}

impl SeriesStyles {
    fn new(rows: &[SweepRow]) -> Self {
        let mut widths: Vec<u32> = rows.iter().map(|r| r.bits).collect();
        widths.sort_unstable_by(|a, b| b.cmp(a));
        widths.dedup();
        let models = series_names(rows);
        SeriesStyles {
            // A colour per model while the palette lasts; beyond, a colour per width and a marker per family.
            by_width: widths.len() > 1 && models.len() > COLORS.len(),
            any_ptq: rows.iter().any(|r| r.weights_source == "ptq"),
            models,
            families: families_of(rows),
            widths,
        }
    }

    /// (colour, marker shape) of a row's series.
    fn of(&self, r: &SweepRow) -> (RGBColor, usize) {
        if self.by_width {
            let f = self
                .families
                .iter()
                .position(|f| f == &r.family_curve())
                .unwrap_or(0);
            (bits_color(r.bits), f)
        } else {
            let m = self
                .models
                .iter()
                .position(|m| *m == r.series())
                .unwrap_or(0);
            (color(m), 0)
        }
    }

    /// Draws the legend into `side` starting at pixel row `y`.
    fn legend<DB: DrawingBackend>(
        &self,
        side: &DrawingArea<DB, Shift>,
        tolerance_pct: Option<f64>,
    ) -> DrawResult
    where
        DB::ErrorType: 'static,
    {
        let font = ("sans-serif", 13).into_font();
        let mut y = 50;
        if self.by_width {
            for &b in &self.widths {
                side.draw(&Circle::new((12, y), 5, bits_color(b).filled()))?;
                side.draw(&Text::new(format!("{b} bits"), (28, y - 8), font.clone()))?;
                y += 20;
            }
            y += 6;
            for (f, fam) in self.families.iter().enumerate() {
                side.draw(&marker_outline((12, y), f))?;
                y += legend_text(side, fam, (28, y - 8), &font)?;
                y += 20;
            }
            y += 6;
            if self.any_ptq {
                side.draw(&Text::new("hollow: PTQ", (6, y - 8), font.clone()))?;
                y += 20;
            }
        } else {
            for (m, name) in self.models.iter().enumerate() {
                side.draw(&PathElement::new(
                    vec![(4, y), (22, y)],
                    color(m).stroke_width(2),
                ))?;
                y += legend_text(side, name, (28, y - 8), &font)?;
                y += 20;
            }
            y += 6;
        }
        if let Some(t) = tolerance_pct {
            side.draw(&PathElement::new(vec![(4, y), (22, y)], BLACK.mix(0.4)))?;
            side.draw(&Text::new(
                format!("tolerance {t:.2}%"),
                (28, y - 8),
                font.clone(),
            ))?;
            y += 20;
        }
        side.draw(&TriangleMarker::new((12, y), 5, BLACK.filled()))?;
        side.draw(&Text::new("above the error axis", (28, y - 8), font))?;
        Ok(())
    }
}

/// Width of the legend strip beside the panels, pixels.
const LEGEND_PX: u32 = 250;

/// Characters of a legend line that fit [`LEGEND_PX`] at the legend's 13-pixel font.
const LEGEND_CHARS: usize = 32;

/// Draws a legend label at `at`; a label too long for the strip that names a rail set (`model @ rails`) is
/// split before the ` @ ` onto a second line. Returns the extra height used, pixels.
fn legend_text<DB: DrawingBackend>(
    side: &DrawingArea<DB, Shift>,
    label: &str,
    at: (i32, i32),
    font: &plotters::style::FontDesc,
) -> Result<i32, DrawingAreaErrorKind<DB::ErrorType>>
where
    DB::ErrorType: 'static,
{
    match label.split_once(" @ ") {
        Some((head, rails)) if label.chars().count() > LEGEND_CHARS => {
            side.draw(&Text::new(head.to_string(), at, font.clone()))?;
            side.draw(&Text::new(
                format!("@ {rails}"),
                (at.0 + 8, at.1 + 15),
                font.clone(),
            ))?;
            Ok(15)
        }
        _ => {
            side.draw(&Text::new(label.to_string(), at, font.clone()))?;
            Ok(0)
        }
    }
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
    let styles = SeriesStyles::new(rows);
    let (x0, x1) = range_with_margin(
        rows.iter().map(|r| r.vdd_v).fold(f64::INFINITY, f64::min),
        rows.iter()
            .map(|r| r.vdd_v)
            .fold(f64::NEG_INFINITY, f64::max),
        0.03,
    );
    let (y_lo, y_max) = error_axis(rows.iter().map(|r| r.faulty_error_pct), tolerance_pct);
    let (main, side) = root.split_horizontally(root.dim_in_pixel().0.saturating_sub(LEGEND_PX));
    let panels = main.split_evenly((1, profiles.len().max(1)));
    for (panel, profile) in panels.iter().zip(&profiles) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("test error vs voltage ({profile})"),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y_lo..y_max)?;
        chart
            .configure_mesh()
            .x_desc("weight SRAM supply voltage (V)")
            .y_desc("test error (%), mean ± std; ▲ above the axis")
            .label_style(("sans-serif", 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        if let Some(t) = tolerance_pct {
            chart.draw_series(LineSeries::new(
                [(x0, t), (x1, t)],
                BLACK.mix(0.4).stroke_width(1),
            ))?;
        }
        let mut labelled: Vec<f64> = Vec::new();
        for model in &styles.models {
            let s = series(rows, model, profile);
            let Some(first) = s.first() else {
                continue;
            };
            let (c, shape) = styles.of(first);
            let ptq = first.weights_source == "ptq";
            let clip = |y: f64| y.clamp(y_lo, y_max);
            // Lines only between neighbouring points inside the axis (an out-of-range point breaks the line).
            for w in s.windows(2) {
                if w[0].faulty_error_pct <= y_max && w[1].faulty_error_pct <= y_max {
                    chart.draw_series(LineSeries::new(
                        w.iter().map(|r| (r.vdd_v, r.faulty_error_pct)),
                        c.stroke_width(if ptq { 1 } else { 2 }),
                    ))?;
                }
            }
            for r in s.iter().filter(|r| r.faulty_error_pct <= y_max) {
                let style = if ptq { c.stroke_width(2) } else { c.filled() };
                draw_marker(&mut chart, (r.vdd_v, r.faulty_error_pct), shape, style)?;
            }
            chart.draw_series(
                s.iter()
                    .filter(|r| r.faulty_error_std_pct > 0.0 && r.faulty_error_pct <= y_max)
                    .map(|r| {
                        PathElement::new(
                            [
                                (r.vdd_v, clip(r.faulty_error_pct - r.faulty_error_std_pct)),
                                (r.vdd_v, clip(r.faulty_error_pct + r.faulty_error_std_pct)),
                            ],
                            c.stroke_width(1),
                        )
                    }),
            )?;
            let pts: Vec<(f64, f64)> = s.iter().map(|r| (r.vdd_v, r.faulty_error_pct)).collect();
            let labels = (!styles.by_width).then_some(&mut labelled);
            draw_out_of_range(&mut chart, &pts, y_max, c, labels)?;
        }
    }
    styles.legend(&side, tolerance_pct)
}

fn draw_energy_vs_voltage<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[SweepRow],
    _unused: Option<f64>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let models = series_names(rows);
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
            .find(|r| &r.series() == model)
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

/// Colour of a bit width in the precision plots (fixed, so every plot and report uses the same one).
fn bits_color(bits: u32) -> RGBColor {
    match bits {
        8 => RGBColor(31, 119, 180),
        6 => RGBColor(44, 160, 44),
        5 => RGBColor(23, 190, 207),
        4 => RGBColor(255, 127, 14),
        3 => RGBColor(214, 39, 40),
        2 => RGBColor(148, 103, 189),
        _ => RGBColor(127, 127, 127),
    }
}

/// Number of distinct marker shapes ([`draw_marker`]); families beyond it reuse shapes.
const MARKER_SHAPES: usize = 8;

/// The outline of the polygon markers around (0, 0), in pixels: 1 triangle, 2 square, 4 diamond, 5 inverted
/// triangle, 7 pentagon (closed: last point = first). 0 (circle), 3 (cross) and 6 (plus) are not polygons.
fn marker_polygon(shape: usize) -> Option<Vec<(i32, i32)>> {
    let pts = match shape % MARKER_SHAPES {
        1 => vec![(0, -5), (5, 4), (-5, 4)],
        2 => vec![(-4, -4), (4, -4), (4, 4), (-4, 4)],
        4 => vec![(0, -5), (5, 0), (0, 5), (-5, 0)],
        5 => vec![(0, 5), (5, -4), (-5, -4)],
        7 => (0..5)
            .map(|k| {
                let a = k as f64 * std::f64::consts::TAU / 5.0 - std::f64::consts::FRAC_PI_2;
                (
                    (5.0 * a.cos()).round() as i32,
                    (5.0 * a.sin()).round() as i32,
                )
            })
            .collect(),
        _ => return None,
    };
    let mut closed = pts.clone();
    closed.push(pts[0]);
    Some(closed)
}

/// The strokes of the line markers around (0, 0): 3 cross, 6 plus.
fn marker_strokes(shape: usize) -> Vec<(i32, i32)> {
    if shape % MARKER_SHAPES == 6 {
        vec![(-5, 0), (5, 0), (0, 0), (0, -5), (0, 5)]
    } else {
        vec![(-4, -4), (4, 4), (0, 0), (4, -4), (-4, 4)]
    }
}

/// Draws one marker of shape `shape` (family index mod [`MARKER_SHAPES`]: circle, triangle, square, cross,
/// diamond, inverted triangle, plus, pentagon); a filled `style` fills it, a hollow one draws its outline.
fn draw_marker<DB: DrawingBackend>(
    chart: &mut ChartContext<
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    p: (f64, f64),
    shape: usize,
    style: ShapeStyle,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    match shape % MARKER_SHAPES {
        0 => chart.draw_series(std::iter::once(Circle::new(p, 4, style)))?,
        1 => chart.draw_series(std::iter::once(TriangleMarker::new(p, 5, style)))?,
        2 => chart.draw_series(std::iter::once(
            EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], style),
        ))?,
        3 => chart.draw_series(std::iter::once(Cross::new(p, 4, style.stroke_width(2))))?,
        6 => chart.draw_series(std::iter::once(
            EmptyElement::at(p) + PathElement::new(marker_strokes(shape), style.stroke_width(2)),
        ))?,
        _ => {
            let pts = marker_polygon(shape).expect("polygon shapes");
            if style.filled {
                chart.draw_series(std::iter::once(
                    EmptyElement::at(p) + Polygon::new(pts, style),
                ))?
            } else {
                chart.draw_series(std::iter::once(
                    EmptyElement::at(p) + PathElement::new(pts, style.stroke_width(1)),
                ))?
            }
        }
    };
    Ok(())
}

/// The outline of marker `shape` (as [`draw_marker`]) around pixel `c`, for legends.
fn marker_outline(c: (i32, i32), shape: usize) -> PathElement<(i32, i32)> {
    let (x, y) = c;
    let offsets: Vec<(i32, i32)> = match shape % MARKER_SHAPES {
        0 => (0..=8)
            .map(|k| {
                let a = k as f64 * std::f64::consts::TAU / 8.0;
                (
                    (4.0 * a.cos()).round() as i32,
                    (4.0 * a.sin()).round() as i32,
                )
            })
            .collect(),
        3 | 6 => marker_strokes(shape),
        _ => marker_polygon(shape).expect("polygon shapes"),
    };
    PathElement::new(
        offsets
            .into_iter()
            .map(|(dx, dy)| (x + dx, y + dy))
            .collect::<Vec<_>>(),
        BLACK.stroke_width(2),
    )
}

fn draw_tradeoff<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[SweepRow],
    tolerance_pct: Option<f64>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let profiles = distinct(rows.iter().map(|r| r.profile.as_str()));
    let families = families_of(rows);
    let mut widths: Vec<u32> = rows.iter().map(|r| r.bits).collect();
    widths.sort_unstable_by(|a, b| b.cmp(a));
    widths.dedup();
    let max_pj = rows.iter().map(|r| r.energy_pj).fold(0.0, f64::max);
    let (div, unit) = energy_unit(max_pj);
    let (x0, x1) = range_with_margin(
        rows.iter()
            .map(|r| r.energy_pj / div)
            .fold(f64::INFINITY, f64::min),
        max_pj / div,
        0.06,
    );
    let (y_lo, y_max) = error_axis(rows.iter().map(|r| r.faulty_error_pct), tolerance_pct);
    let (main, side) = root.split_horizontally(root.dim_in_pixel().0.saturating_sub(LEGEND_PX));
    let panels = main.split_evenly((1, profiles.len().max(1)));
    for (panel, profile) in panels.iter().zip(&profiles) {
        let mut chart = ChartBuilder::on(panel)
            .caption(
                format!("error vs energy per inference ({profile})"),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y_lo..y_max)?;
        chart
            .configure_mesh()
            .x_desc(format!("energy per inference, whole accelerator ({unit})"))
            .y_desc("test error (%); ▲ above the axis")
            .label_style(("sans-serif", 15))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        if let Some(t) = tolerance_pct {
            chart.draw_series(LineSeries::new(
                [(x0, t), (x1, t)],
                BLACK.mix(0.4).stroke_width(1),
            ))?;
        }
        let mine: Vec<&SweepRow> = rows.iter().filter(|r| &r.profile == profile).collect();
        let front_all = pareto_front(
            &mine
                .iter()
                .map(|r| (r.energy_pj / div, r.faulty_error_pct))
                .collect::<Vec<_>>(),
        );
        // One series per bit width: colour = width, marker = family, each point labelled by its voltage.
        for &b in &widths {
            let c = bits_color(b);
            let mut series: Vec<&&SweepRow> = mine.iter().filter(|r| r.bits == b).collect();
            // Highest voltage first: a point is labelled when its error differs from the next higher voltage's
            // of the same model (where the faults start to matter), or when it is on the Pareto front.
            series.sort_by(|a, b| {
                a.series()
                    .cmp(&b.series())
                    .then(b.vdd_v.total_cmp(&a.vdd_v))
            });
            for (k, r) in series.iter().enumerate() {
                let f = families
                    .iter()
                    .position(|f| f == &r.family_curve())
                    .unwrap_or(0);
                let p = (r.energy_pj / div, r.faulty_error_pct);
                if p.1 > y_max {
                    draw_out_of_range(&mut chart, &[p], y_max, c, None)?;
                    continue;
                }
                let prev = k
                    .checked_sub(1)
                    .map(|j| series[j])
                    .filter(|q| q.series() == r.series());
                let changed = prev.is_none_or(|q| q.faulty_error_pct != r.faulty_error_pct);
                let on_front = front_all.iter().any(|&(x, y)| x == p.0 && y == p.1);
                let style = if r.weights_source == "ptq" {
                    c.stroke_width(2)
                } else {
                    c.filled()
                };
                draw_marker(&mut chart, p, f, style)?;
                if changed || on_front {
                    chart.draw_series(std::iter::once(
                        EmptyElement::at(p)
                            + Text::new(
                                format!("{:.3}", r.vdd_v),
                                (5, -14),
                                ("sans-serif", 11).into_font().color(&c),
                            ),
                    ))?;
                }
            }
        }
        let front: Vec<(f64, f64)> = front_all
            .iter()
            .copied()
            .map(|(x, y)| (x, y.min(y_max)))
            .collect();
        chart.draw_series(LineSeries::new(front, BLACK.stroke_width(1)))?;
    }
    // One legend for all panels, beside them (the panels' corners all hold data).
    let font = ("sans-serif", 14).into_font();
    let mut y = 50;
    let line = |y: i32| (12, y);
    for &b in &widths {
        side.draw(&Circle::new(line(y), 5, bits_color(b).filled()))?;
        side.draw(&Text::new(format!("{b} bits"), (28, y - 8), font.clone()))?;
        y += 22;
    }
    y += 8;
    for (f, fam) in families.iter().enumerate() {
        side.draw(&marker_outline(line(y), f))?;
        side.draw(&Text::new(fam.clone(), (28, y - 8), font.clone()))?;
        y += 22;
    }
    y += 8;
    side.draw(&Text::new(
        "filled: trained at the width",
        (6, y - 8),
        font.clone(),
    ))?;
    y += 20;
    side.draw(&Text::new("hollow: PTQ", (6, y - 8), font.clone()))?;
    y += 28;
    side.draw(&PathElement::new(
        vec![(4, y), (22, y)],
        BLACK.stroke_width(1),
    ))?;
    side.draw(&Text::new("Pareto front", (28, y - 8), font.clone()))?;
    y += 22;
    if let Some(t) = tolerance_pct {
        side.draw(&PathElement::new(vec![(4, y), (22, y)], BLACK.mix(0.4)))?;
        side.draw(&Text::new(
            format!("tolerance {t:.2}%"),
            (28, y - 8),
            font.clone(),
        ))?;
        y += 22;
    }
    side.draw(&TriangleMarker::new((12, y), 5, BLACK.filled()))?;
    side.draw(&Text::new(
        "above the error axis",
        (28, y - 8),
        font.clone(),
    ))?;
    y += 22;
    side.draw(&Text::new("labels: voltage (V)", (6, y - 8), font))?;
    Ok(())
}

/// Colour of an error cell: green at `lo`, yellow at the tolerance `t`, red 5 points above it, dark beyond.
fn error_cell_color(e: f64, lo: f64, t: f64) -> RGBColor {
    let lerp = |a: RGBColor, b: RGBColor, x: f64| {
        let x = x.clamp(0.0, 1.0);
        let m = |p: u8, q: u8| (p as f64 + (q as f64 - p as f64) * x).round() as u8;
        RGBColor(m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
    };
    let (green, yellow, red, dark) = (
        RGBColor(120, 198, 121),
        RGBColor(255, 237, 160),
        RGBColor(227, 26, 28),
        RGBColor(103, 0, 13),
    );
    if e <= t {
        lerp(green, yellow, (e - lo) / (t - lo).max(1e-9))
    } else if e <= t + 5.0 {
        lerp(yellow, red, (e - t) / 5.0)
    } else {
        lerp(red, dark, (e - t - 5.0) / 20.0)
    }
}

/// Colour of an energy-saving cell: white at 0 %, blue at `full` %, red for negative savings (more energy).
fn saving_cell_color(pct: f64, full: f64) -> RGBColor {
    let x = (pct / full.max(1e-9)).clamp(-1.0, 1.0);
    let m = |p: u8, q: f64| (255.0 + (p as f64 - 255.0) * q).round() as u8;
    if x >= 0.0 {
        RGBColor(m(8, x), m(81, x), m(156, x))
    } else {
        RGBColor(m(203, -x), m(24, -x), m(29, -x))
    }
}

/// The largest caption size up to 18 px at which `caption` fits the panel's width (at least 9 px), so that long
/// family names never run into the neighbouring panel.
fn caption_font_px<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, caption: &str) -> u32 {
    let room = area.dim_in_pixel().0.saturating_sub(16);
    (9..=18)
        .rev()
        .find(|&px| {
            area.estimate_text_size(caption, &("sans-serif", px).into_text_style(area))
                .is_ok_and(|(w, _)| w <= room)
        })
        .unwrap_or(9)
}

/// A grid of cells over (voltage ascending, bits ascending); `cell(vdd, bits)` gives (colour, text) or `None`.
fn draw_grid<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    caption: &str,
    voltages: &[f64],
    widths: &[u32],
    cell: &dyn Fn(f64, u32) -> Option<(RGBColor, String)>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    // Cell (i, j) is the unit square [i, i+1] x [j, j+1]; the axis labels are drawn at the cell centres by hand,
    // so a single voltage or a single width (a one-row family) still gets a full-size panel.
    let nv = voltages.len().max(1) as f64;
    let nb = widths.len().max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", caption_font_px(area, caption)))
        .margin(8)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..nv, 0.0..nb)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_labels(0)
        .y_labels(0)
        .x_desc("weight SRAM supply voltage (V)")
        .y_desc("bits per weight")
        .label_style(("sans-serif", 12))
        .draw()?;
    let centre = plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Center,
    );
    for (i, &v) in voltages.iter().enumerate() {
        for (j, &b) in widths.iter().enumerate() {
            let (x, y) = (i as f64, j as f64);
            let (fill, text) = cell(v, b).unwrap_or((RGBColor(235, 235, 235), "—".into()));
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                fill.filled(),
            )))?;
            let dark = (fill.0 as u32 + fill.1 as u32 + fill.2 as u32) < 330;
            let tc = if dark { WHITE } else { BLACK };
            chart.draw_series(std::iter::once(Text::new(
                text,
                (x + 0.5, y + 0.5),
                ("sans-serif", 11).into_font().color(&tc).pos(centre),
            )))?;
        }
    }
    // Tick labels at the centres, in the label areas (pixel positions relative to `area`).
    let base = area.get_base_pixel();
    let label = ("sans-serif", 12).into_font().color(&BLACK);
    for (i, v) in voltages.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, 0.0));
        area.draw(&Text::new(
            format!("{v:.3}"),
            (px - base.0, py - base.1 + 10),
            label.clone().pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Top,
            )),
        ))?;
    }
    for (j, b) in widths.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(0.0, j as f64 + 0.5));
        area.draw(&Text::new(
            format!("{b} b"),
            (px - base.0 - 6, py - base.1),
            label.clone().pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Right,
                plotters::style::text_anchor::VPos::Center,
            )),
        ))?;
    }
    Ok(())
}

/// Sorted distinct voltages (ascending) and widths (ascending) of `rows`.
fn grid_axes(rows: &[&SweepRow]) -> (Vec<f64>, Vec<u32>) {
    let mut v: Vec<f64> = rows.iter().map(|r| r.vdd_v).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v.dedup();
    let mut b: Vec<u32> = rows.iter().map(|r| r.bits).collect();
    b.sort_unstable();
    b.dedup();
    (v, b)
}

fn draw_heatmap_error<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[SweepRow],
    tolerance_pct: Option<f64>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let profiles = distinct(rows.iter().map(|r| r.profile.as_str()));
    let families = families_of(rows);
    let lo = rows
        .iter()
        .map(|r| r.clean_error_pct)
        .fold(f64::INFINITY, f64::min);
    let t = tolerance_pct.unwrap_or(lo + 1.0);
    let panels = root.split_evenly((families.len().max(1), profiles.len().max(1)));
    let mut k = 0;
    for fam in &families {
        for profile in &profiles {
            let mine: Vec<&SweepRow> = rows
                .iter()
                .filter(|r| &r.family_curve() == fam && &r.profile == profile)
                .collect();
            let (voltages, widths) = grid_axes(&mine);
            let cell = |v: f64, b: u32| {
                mine.iter().find(|r| r.vdd_v == v && r.bits == b).map(|r| {
                    let tag = if r.weights_source == "ptq" { "*" } else { "" };
                    (
                        error_cell_color(r.faulty_error_pct, lo, t),
                        format!("{:.1}{tag}", r.faulty_error_pct),
                    )
                })
            };
            draw_grid(
                &panels[k],
                &format!(
                    "{fam} on {profile}: test error (%){}; tolerance {t:.2}%",
                    if mine.iter().any(|r| r.weights_source == "ptq") {
                        ", * = PTQ"
                    } else {
                        ""
                    }
                ),
                &voltages,
                &widths,
                &cell,
            )?;
            k += 1;
        }
    }
    Ok(())
}

/// Families grouped by their energy table (one group per network): energy depends on the network and the
/// width, not on the profile or the training, so families that agree on every (bits, voltage) cell they share
/// are one group, whose cells are the union of theirs (first profile's rows).
fn energy_groups_of(rows: &[SweepRow]) -> Vec<(Vec<String>, Vec<&SweepRow>)> {
    let first_profile = rows.first().map(|r| r.profile.clone()).unwrap_or_default();
    let families = families_of(rows);
    let mut groups: Vec<(Vec<String>, Vec<&SweepRow>)> = Vec::new();
    for fam in &families {
        let mine: Vec<&SweepRow> = rows
            .iter()
            .filter(|r| &r.family_curve() == fam && r.profile == first_profile)
            .collect();
        let agrees = |other: &[&SweepRow]| {
            let mut common = 0;
            for m in &mine {
                if let Some(o) = other
                    .iter()
                    .find(|o| o.bits == m.bits && o.vdd_v == m.vdd_v)
                {
                    if o.energy_pj != m.energy_pj
                        || o.weight_sram_energy_pj != m.weight_sram_energy_pj
                    {
                        return false;
                    }
                    common += 1;
                }
            }
            common > 0
        };
        match groups.iter_mut().find(|(_, g)| agrees(g)) {
            Some((names, g)) => {
                names.push(fam.clone());
                for m in mine {
                    if !g.iter().any(|o| o.bits == m.bits && o.vdd_v == m.vdd_v) {
                        g.push(m);
                    }
                }
            }
            None => groups.push((vec![fam.clone()], mine)),
        }
    }
    groups
}

/// Number of distinct energy tables (panel rows of the energy heat map).
fn energy_groups(rows: &[SweepRow]) -> u32 {
    energy_groups_of(rows).len() as u32
}

fn draw_heatmap_energy<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    rows: &[SweepRow],
    _unused: Option<f64>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let groups = energy_groups_of(rows);
    let panels = root.split_evenly((groups.len().max(1), 2));
    for (g, (names, mine)) in groups.iter().enumerate() {
        let (voltages, widths) = grid_axes(mine);
        // With one network all families share the numbers; otherwise name the group's first family.
        let label = if groups.len() > 1 {
            format!(
                " ({}{})",
                names[0],
                if names.len() > 1 { ", …" } else { "" }
            )
        } else {
            String::new()
        };
        let find = |v: f64, b: u32| mine.iter().find(|r| r.vdd_v == v && r.bits == b);
        let full = |f: fn(&SweepRow) -> f64| mine.iter().map(|r| f(r).abs()).fold(10.0, f64::max);
        let (full_w, full_t) = (
            full(|r| r.weight_sram_saving_vs_vmin_pct),
            full(|r| r.energy_saving_vs_vmin_pct),
        );
        draw_grid(
            &panels[2 * g],
            &format!("weight SRAM: energy saved vs 8-bit @ V_min (%){label}"),
            &voltages,
            &widths,
            &|v, b| {
                find(v, b).map(|r| {
                    (
                        saving_cell_color(r.weight_sram_saving_vs_vmin_pct, full_w),
                        format!("{:.0}", r.weight_sram_saving_vs_vmin_pct),
                    )
                })
            },
        )?;
        draw_grid(
            &panels[2 * g + 1],
            &format!("whole accelerator: energy saved vs 8-bit @ V_min (%){label}"),
            &voltages,
            &widths,
            &|v, b| {
                find(v, b).map(|r| {
                    (
                        saving_cell_color(r.energy_saving_vs_vmin_pct, full_t),
                        format!("{:.1}", r.energy_saving_vs_vmin_pct),
                    )
                })
            },
        )?;
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
        (PLOT_SIZE.0 + LEGEND_PX, PLOT_SIZE.1 + 80),
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
        PLOT_SIZE,
        |r| draw_energy_vs_voltage(r, rows, None),
        |r| draw_energy_vs_voltage(r, rows, None),
    )
}

/// Accuracy–energy trade-off with the Pareto front (`tradeoff.{png,svg}` in `dir`); `tolerance_pct` draws a
/// horizontal line and sets the clipped error axis.
pub fn tradeoff(
    dir: &Path,
    rows: &[SweepRow],
    tolerance_pct: Option<f64>,
) -> Result<PlotFiles, ReportError> {
    check_rows(rows)?;
    render(
        dir,
        "tradeoff",
        (PLOT_SIZE.0 + LEGEND_PX, PLOT_SIZE.1 + 80),
        |r| draw_tradeoff(r, rows, tolerance_pct),
        |r| draw_tradeoff(r, rows, tolerance_pct),
    )
}

/// Height in pixels of one row of heat-map panels.
const HEATMAP_ROW_PX: u32 = 300;

/// Faulty error over (voltage, bits), one panel per family and profile (`heatmap_error.{png,svg}`).
pub fn heatmap_error(
    dir: &Path,
    rows: &[SweepRow],
    tolerance_pct: Option<f64>,
) -> Result<PlotFiles, ReportError> {
    check_rows(rows)?;
    let families = families_of(rows).len() as u32;
    let size = (PLOT_SIZE.0, HEATMAP_ROW_PX * families.clamp(1, 12));
    render(
        dir,
        "heatmap_error",
        size,
        |r| draw_heatmap_error(r, rows, tolerance_pct),
        |r| draw_heatmap_error(r, rows, tolerance_pct),
    )
}

/// Energy saved against 8-bit weights at V_min over (voltage, bits), weight SRAM and whole accelerator
/// (`heatmap_energy.{png,svg}`).
pub fn heatmap_energy(dir: &Path, rows: &[SweepRow]) -> Result<PlotFiles, ReportError> {
    check_rows(rows)?;
    render(
        dir,
        "heatmap_energy",
        (
            PLOT_SIZE.0,
            (HEATMAP_ROW_PX + 40) * energy_groups(rows).clamp(1, 12),
        ),
        |r| draw_heatmap_energy(r, rows, None),
        |r| draw_heatmap_energy(r, rows, None),
    )
}

/// The families of `rows` in first-seen order ([`SweepRow::family_curve`]: with a rails axis, one per family and
/// rail set, so the heat maps and markers never mix two rail sets).
fn families_of(rows: &[SweepRow]) -> Vec<String> {
    let f: Vec<String> = rows.iter().map(|r| r.family_curve()).collect();
    distinct(f.iter().map(|s| s.as_str()))
}

/// The profiles of `rows` in first-seen order.
pub fn distinct_profiles(rows: &[SweepRow]) -> Vec<String> {
    distinct(rows.iter().map(|r| r.profile.as_str()))
}

/// Group rows by (model, profile) in first-seen order, for callers that need per-series views.
pub fn group_by_series(rows: &[SweepRow]) -> BTreeMap<(String, String), Vec<&SweepRow>> {
    let mut m: BTreeMap<(String, String), Vec<&SweepRow>> = BTreeMap::new();
    for r in rows {
        m.entry((r.series(), r.profile.clone()))
            .or_default()
            .push(r);
    }
    m
}
