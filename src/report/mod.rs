//! Reports: the sweep CSV row type (units in the headers), plots (PNG + SVG, plotters) and the Markdown report.
//!
//! See docs/run-and-sweep.md for the file formats and the definitions used in the report (tolerance, lowest safe
//! voltage, savings).
pub mod fonts;
pub mod row;

pub use row::{read_csv, write_csv, SweepRow};

use std::path::{Path, PathBuf};

/// Errors of the report layer; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: CSV error: {msg}")]
    Csv { path: PathBuf, msg: String },
    #[error("{path}: could not draw the plot: {msg}")]
    Plot { path: PathBuf, msg: String },
    #[error("no sweep rows to report")]
    Empty,
}

/// Writes `bytes` to `path` atomically ([`crate::fsutil::write_atomic`]): a reader or a resumed sweep never sees a
/// half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::fsutil::write_atomic(path, bytes).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}
pub mod markdown;
pub mod plots;

/// File names of a report bundle, relative to its folder.
pub const CSV_FILE: &str = "sweep.csv";
pub const REPORT_FILE: &str = "report.md";

/// Writes the full bundle into `dir`: `sweep.csv`, the three plots (PNG + SVG) and `report.md`. Returns the
/// summary used in the report.
pub fn write_bundle(
    dir: &Path,
    rows: &[SweepRow],
    ctx: &markdown::ReportContext,
    tolerance_pts: f64,
) -> Result<markdown::Summary, ReportError> {
    let summary = markdown::summarize(rows, tolerance_pts).ok_or(ReportError::Empty)?;
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    write_csv(&dir.join(CSV_FILE), rows)?;
    plots::error_vs_voltage(dir, rows, Some(summary.reference.threshold_pct))?;
    plots::energy_vs_voltage(dir, rows)?;
    plots::tradeoff(dir, rows, Some(summary.reference.threshold_pct))?;
    plots::heatmap_error(dir, rows, Some(summary.reference.threshold_pct))?;
    plots::heatmap_energy(dir, rows)?;
    let mut ctx = ctx.clone();
    ctx.csv = CSV_FILE.to_string();
    ctx.plots = vec![
        (
            "error_vs_voltage.png".into(),
            "Test error against weight-SRAM voltage".into(),
        ),
        (
            "energy_vs_voltage.png".into(),
            "Energy per inference against voltage".into(),
        ),
        (
            "tradeoff.png".into(),
            "Error against energy: one colour per bit width, one marker per family (hollow = PTQ), \
             points labelled by voltage, Pareto front over all (bits, voltage, model)"
                .into(),
        ),
        (
            "heatmap_error.png".into(),
            "Test error over (voltage, bits) per family and profile".into(),
        ),
        (
            "heatmap_energy.png".into(),
            "Energy saved against 8-bit weights at V_min over (voltage, bits)".into(),
        ),
    ];
    let md = markdown::render(&ctx, &summary, tolerance_pts);
    write_atomic(&dir.join(REPORT_FILE), md.as_bytes())?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimal well-formedness check of an SVG document: XML prolog or `<svg` root, balanced element tags.
    fn assert_svg_well_formed(text: &str) {
        let body = text.trim_start();
        let body = if body.starts_with("<?xml") {
            &body[body.find("?>").unwrap() + 2..]
        } else {
            body
        };
        assert!(body.trim_start().starts_with("<svg"), "no <svg root");
        let mut stack: Vec<String> = Vec::new();
        let mut rest = body;
        while let Some(i) = rest.find('<') {
            let j = rest[i..].find('>').expect("unterminated tag") + i;
            let tag = &rest[i + 1..j];
            if tag.starts_with('!') || tag.starts_with('?') || tag.ends_with('/') {
                // comment, processing instruction or self-closing
            } else if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.trim()),
                    "mismatched </{name}>"
                );
            } else {
                let name = tag.split(|c: char| c.is_whitespace()).next().unwrap();
                stack.push(name.to_string());
            }
            rest = &rest[j + 1..];
        }
        assert!(stack.is_empty(), "unclosed tags {stack:?}");
    }

    #[test]
    fn bundle_writes_png_svg_csv_and_report() {
        let dir = tempfile::tempdir().unwrap();
        let rows = row::synthetic::rows();
        let ctx = markdown::ReportContext {
            title: "synthetic".into(),
            ..Default::default()
        };
        let summary = write_bundle(dir.path(), &rows, &ctx, 1.0).unwrap();
        assert_eq!(summary.points.len(), 8);
        for stem in [
            "error_vs_voltage",
            "energy_vs_voltage",
            "tradeoff",
            "heatmap_error",
            "heatmap_energy",
        ] {
            let png = std::fs::read(dir.path().join(format!("{stem}.png"))).unwrap();
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{stem}.png magic");
            assert!(png.len() > 10_000, "{stem}.png suspiciously small");
            let svg = std::fs::read_to_string(dir.path().join(format!("{stem}.svg"))).unwrap();
            assert_svg_well_formed(&svg);
            assert!(svg.contains("<text"), "{stem}.svg has no text");
        }
        let md = std::fs::read_to_string(dir.path().join(REPORT_FILE)).unwrap();
        assert!(md.contains("(tradeoff.png)"));
        assert_eq!(read_csv(&dir.path().join(CSV_FILE)).unwrap(), rows);
        // No temporary files left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn empty_rows_are_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            write_bundle(dir.path(), &[], &Default::default(), 1.0),
            Err(ReportError::Empty)
        ));
        assert!(plots::tradeoff(dir.path(), &[], None).is_err());
        assert!(plots::heatmap_error(dir.path(), &[], None).is_err());
        assert!(plots::heatmap_energy(dir.path(), &[]).is_err());
    }

    #[test]
    fn pareto_front_is_non_dominated() {
        let pts = [
            (3.0, 5.0),
            (1.0, 9.0),
            (2.0, 9.5),
            (2.0, 4.0),
            (5.0, 4.0),
            (4.0, 1.0),
        ];
        let front = plots::pareto_front(&pts);
        assert_eq!(front, vec![(1.0, 9.0), (2.0, 4.0), (4.0, 1.0)]);
        for p in &pts {
            let dominated = pts.iter().any(|q| q.0 <= p.0 && q.1 < p.1);
            assert_eq!(!dominated, front.contains(p), "{p:?}");
        }
    }
}
