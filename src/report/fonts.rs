//! Font registration for plotters' `ab_glyph` backend.
//!
//! plotters is built without system-font support (no fontconfig), so text in plots needs a font registered at
//! run time. We embed `assets/fonts/DejaVuSans.ttf` (licence in `assets/fonts/LICENSE-DejaVu.txt`) and register it
//! under the generic family names plotters uses (`sans-serif`, `serif`, `monospace`) and under `DejaVu Sans`.
//! Call [`register`] once before drawing; it is idempotent and thread-safe.
use plotters::style::FontStyle;
use std::sync::OnceLock;

/// The embedded DejaVu Sans font file.
pub static DEJAVU_SANS_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Family names the font is registered under.
pub const FAMILIES: [&str; 4] = ["sans-serif", "serif", "monospace", "DejaVu Sans"];

/// Registers the embedded font with plotters (once per process). Returns an error message if the embedded
/// font cannot be parsed (which would be a build defect, not a user error).
pub fn register() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            for family in FAMILIES {
                for style in [
                    FontStyle::Normal,
                    FontStyle::Bold,
                    FontStyle::Italic,
                    FontStyle::Oblique,
                ] {
                    plotters::style::register_font(family, style, DEJAVU_SANS_TTF).map_err(
                        |_| {
                            "embedded font assets/fonts/DejaVuSans.ttf could not be parsed"
                                .to_string()
                        },
                    )?;
                }
            }
            Ok(())
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::style::{FontDesc, FontFamily};

    #[test]
    fn registered_font_lays_out_text() {
        register().unwrap();
        register().unwrap(); // idempotent
        let font = FontDesc::new(FontFamily::SansSerif, 20.0, FontStyle::Normal);
        let (w, h) = font.box_size("accelsim 0.85 V").unwrap();
        assert!(w > 50 && h > 5, "text box {w}x{h}");
        let bold = FontDesc::new(FontFamily::Name("DejaVu Sans"), 20.0, FontStyle::Bold);
        assert!(bold.box_size("x").unwrap().0 > 0);
    }
}
