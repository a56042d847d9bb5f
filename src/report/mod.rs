//! Reports: the sweep CSV row type (units in the headers), plots (PNG + SVG, plotters) and the Markdown report.
//!
//! See docs/run-and-sweep.md for the file formats and the definitions used in the report (tolerance, lowest safe
//! voltage, savings).
pub mod fonts;
