//! Drawing a segment of a fault map (like the paper's 64x128 map figures, docs/sram-profiles.md#paper-chips).
use super::profile::{FailureKind, FaultProfile};
use super::SramError;
use plotters::prelude::*;
use std::path::Path;

/// Which part of the map to draw: `rows` rows from `row0`, of `arrays` arrays side by side from `array0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapSegment {
    pub array0: u32,
    pub arrays: u32,
    pub row0: u32,
    pub rows: u32,
}

impl Default for MapSegment {
    /// 64 rows x 2 arrays of 64 columns = the paper's 64x128 segments.
    fn default() -> Self {
        MapSegment {
            array0: 0,
            arrays: 2,
            row0: 0,
            rows: 64,
        }
    }
}

const READS_ONE: RGBColor = RGBColor(214, 39, 40);
const READS_ZERO: RGBColor = RGBColor(31, 119, 180);
const FLIPS: RGBColor = RGBColor(148, 103, 189);

fn colour(kind: FailureKind, persistent: bool) -> RGBColor {
    let c = match kind {
        FailureKind::ReadsOne => READS_ONE,
        FailureKind::ReadsZero => READS_ZERO,
        FailureKind::Flips => FLIPS,
    };
    if persistent {
        c
    } else {
        // Transient cells: the same hue, paler.
        RGBColor(
            ((c.0 as u16 + 2 * 255) / 3) as u8,
            ((c.1 as u16 + 2 * 255) / 3) as u8,
            ((c.2 as u16 + 2 * 255) / 3) as u8,
        )
    }
}

/// Draws the cells failing at `vdd_rel` in `seg` to a PNG: red = reads as 1 (0→1), blue = reads as 0 (1→0),
/// purple = flips; pale = transient. Rows run downwards, columns of successive arrays side by side.
pub fn draw_map_png(
    profile: &FaultProfile,
    vdd_rel: f64,
    seg: MapSegment,
    out: &Path,
) -> Result<(), SramError> {
    let m = &profile.meta;
    if seg.arrays == 0
        || seg.rows == 0
        || seg.array0 as u64 + seg.arrays as u64 > m.arrays as u64
        || seg.row0 as u64 + seg.rows as u64 > m.rows as u64
    {
        return Err(SramError::Invalid(format!(
            "map segment arrays {}..{} rows {}..{} is outside the profile {} ({} arrays of {} rows)",
            seg.array0,
            seg.array0 as u64 + seg.arrays as u64,
            seg.row0,
            seg.row0 as u64 + seg.rows as u64,
            profile.origin(),
            m.arrays,
            m.rows
        )));
    }
    let failing = profile.failing_at(vdd_rel)?;
    let stats = profile.stats_at(vdd_rel)?;
    crate::report::fonts::register().map_err(SramError::Invalid)?;
    let ncols = seg.arrays * m.columns;
    let nrows = seg.rows;
    let px = (1200 / ncols).clamp(1, 12);
    let width = ncols * px + 90;
    let height = nrows * px + 120;
    let draw_err =
        |e: String| SramError::Invalid(format!("{}: cannot draw the map: {e}", out.display()));
    let root = BitMapBackend::new(out, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
    let caption = format!(
        "{} at vdd_rel {vdd_rel}: BER {:.4}% (0→1 {:.4}%, 1→0 {:.4}%); pale = transient",
        m.name,
        stats.ber * 100.0,
        stats.p01 * 100.0,
        stats.p10 * 100.0
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(45)
        .build_cartesian_2d(0f64..ncols as f64, 0f64..nrows as f64)
        .map_err(|e| draw_err(e.to_string()))?;
    let row0 = seg.row0;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(format!(
            "column (arrays {}..{})",
            seg.array0,
            seg.array0 + seg.arrays - 1
        ))
        .y_desc("row")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{:.0}", row0 as f64 + nrows as f64 - y))
        .draw()
        .map_err(|e| draw_err(e.to_string()))?;
    let cells_per_array = m.rows as u64 * m.columns as u64;
    let mut rects: Vec<(FailureKind, bool, f64, f64)> = Vec::new();
    for c in failing {
        let idx = c.cell as u64;
        let array = (idx / cells_per_array) as u32;
        let row = ((idx / m.columns as u64) % m.rows as u64) as u32;
        let col = (idx % m.columns as u64) as u32;
        if array < seg.array0
            || array >= seg.array0 + seg.arrays
            || row < seg.row0
            || row >= seg.row0 + seg.rows
        {
            continue;
        }
        let x = ((array - seg.array0) * m.columns + col) as f64;
        let y = (nrows - 1 - (row - seg.row0)) as f64;
        rects.push((c.kind, c.is_persistent(), x, y));
    }
    for (kind, label) in [
        (FailureKind::ReadsOne, "reads 1 (0→1)"),
        (FailureKind::ReadsZero, "reads 0 (1→0)"),
        (FailureKind::Flips, "flips"),
    ] {
        let col = colour(kind, true);
        chart
            .draw_series(rects.iter().filter(|r| r.0 == kind).map(|&(k, p, x, y)| {
                Rectangle::new([(x, y), (x + 1.0, y + 1.0)], colour(k, p).filled())
            }))
            .map_err(|e| draw_err(e.to_string()))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], col.filled()));
    }
    // Array boundaries.
    for k in 1..seg.arrays {
        let x = (k * m.columns) as f64;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, 0.0), (x, nrows as f64)],
                BLACK,
            )))
            .map_err(|e| draw_err(e.to_string()))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| draw_err(e.to_string()))?;
    root.present().map_err(|e| draw_err(e.to_string()))?;
    Ok(())
}
