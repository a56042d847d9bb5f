//! SCALE-Sim topology files.
//!
//! Two forms, told apart by the header row:
//! * convolution: `Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter,
//!   Strides,` — the IFMAP size already includes the zero padding; an optional 9th column is a separate stride
//!   width (SCALE-Sim v2 writes `Stride height, Stride width`);
//! * GEMM: `Layer, M, N, K,` (see [`super::layer`] for the meaning of M, N, K).
//!
//! Cells are trimmed; the trailing comma SCALE-Sim writes (an empty last cell) is accepted, as are blank lines.
use super::layer::{Layer, LayerError, OfmapRounding};
use std::path::Path;

/// Error reading a topology file: names the file, the 1-based line and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}:{line}: {message}")]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}:{line}: {source}")]
    Layer {
        file: String,
        line: usize,
        #[source]
        source: LayerError,
    },
    #[error("{file}: no layers (expected a header row and at least one layer row)")]
    Empty { file: String },
}

/// Which of the two SCALE-Sim topology forms a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopologyForm {
    Conv,
    Gemm,
}

/// Reads a SCALE-Sim topology CSV from a file (see the module docs).
pub fn read_topology(path: &Path, rounding: OfmapRounding) -> Result<Vec<Layer>, TopologyError> {
    let file = path.display().to_string();
    let io = |source| TopologyError::Io {
        file: file.clone(),
        source,
    };
    let bytes = crate::limits::read_file(path, crate::limits::MAX_TOML_FILE_BYTES, "topology file")
        .map_err(|e| match e {
            crate::limits::ReadError::Io(e) => io(e),
            crate::limits::ReadError::TooLarge(m) => io(std::io::Error::other(m)),
        })?;
    let text = String::from_utf8(bytes).map_err(|_| io(std::io::Error::other("not UTF-8 text")))?;
    parse_topology(&text, &file, rounding)
}

/// Parses the text of a SCALE-Sim topology CSV; `file` is only used in error messages.
pub fn parse_topology(
    text: &str,
    file: &str,
    rounding: OfmapRounding,
) -> Result<Vec<Layer>, TopologyError> {
    let perr = |line: usize, message: String| TopologyError::Parse {
        file: file.to_string(),
        line,
        message: crate::limits::printable(&message),
    };
    let mut rows = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, split_row(l)))
        .filter(|(_, cells)| !cells.is_empty());
    let Some((header_line, header)) = rows.next() else {
        return Err(TopologyError::Empty {
            file: file.to_string(),
        });
    };
    let form = detect_form(&header).ok_or_else(|| {
        perr(
            header_line,
            format!(
                "unrecognised header `{}`: expected SCALE-Sim's `Layer name, IFMAP Height, IFMAP Width, Filter \
                 Height, Filter Width, Channels, Num Filter, Strides,` or `Layer, M, N, K,`",
                header.join(",")
            ),
        )
    })?;
    // Optional `Groups` column (an accelsim extension; SCALE-Sim has none): grouped and depthwise convolutions.
    let groups_col = header
        .iter()
        .position(|c| c.to_ascii_lowercase().contains("group"))
        .filter(|&j| j >= 8 && form == TopologyForm::Conv);
    let mut layers = Vec::new();
    for (line, cells) in rows {
        let name = cells[0].to_string();
        let nums: Vec<u64> = cells[1..]
            .iter()
            .enumerate()
            .map(|(j, c)| {
                c.parse::<u64>().map_err(|_| {
                    perr(
                        line,
                        format!(
                            "layer `{name}`: column {} = `{c}` is not a non-negative integer",
                            j + 2
                        ),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let lerr = |source| TopologyError::Layer {
            file: file.to_string(),
            line,
            source,
        };
        let layer = match form {
            TopologyForm::Gemm => {
                if nums.len() != 3 {
                    return Err(perr(
                        line,
                        format!(
                            "layer `{name}`: expected 3 numbers (M, N, K), found {}",
                            nums.len()
                        ),
                    ));
                }
                Layer::gemm(&name, nums[0], nums[1], nums[2]).map_err(lerr)?
            }
            TopologyForm::Conv => {
                let mut nums = nums;
                let groups = match groups_col {
                    Some(j) if nums.len() == header.len() - 1 => nums.remove(j - 1),
                    Some(_) => {
                        return Err(perr(
                            line,
                            format!(
                            "layer `{name}`: expected {} numbers (one per header column), found {}",
                            header.len() - 1,
                            nums.len()
                        ),
                        ))
                    }
                    None => 1,
                };
                if nums.len() != 7 && nums.len() != 8 {
                    return Err(perr(
                        line,
                        format!(
                            "layer `{name}`: expected 7 numbers (IFMAP height, IFMAP width, filter height, filter \
                             width, channels, num filters, stride) or 8 (separate stride width), found {}",
                            nums.len()
                        ),
                    ));
                }
                if groups == 0 || !nums[4].is_multiple_of(groups) || !nums[5].is_multiple_of(groups)
                {
                    return Err(perr(
                        line,
                        format!(
                            "layer `{name}`: groups = {groups} must divide the channels ({}) and filters ({})",
                            nums[4], nums[5]
                        ),
                    ));
                }
                let stride_w = *nums.get(7).unwrap_or(&nums[6]);
                // Each group is its own GEMM (docs/systolic.md, grouped and depthwise convolutions).
                for gi in 0..groups {
                    let gname = if groups == 1 {
                        name.clone()
                    } else {
                        format!("{name}[g{gi}]")
                    };
                    layers.push(
                        Layer::scalesim_conv(
                            &gname,
                            nums[0],
                            nums[1],
                            nums[2],
                            nums[3],
                            nums[4] / groups,
                            nums[5] / groups,
                            nums[6],
                            stride_w,
                            rounding,
                        )
                        .map_err(lerr)?,
                    );
                }
                continue;
            }
        };
        layers.push(layer);
    }
    if layers.is_empty() {
        return Err(TopologyError::Empty {
            file: file.to_string(),
        });
    }
    Ok(layers)
}

/// Splits one CSV row into trimmed cells, dropping trailing empty cells (SCALE-Sim's trailing comma).
fn split_row(line: &str) -> Vec<&str> {
    let mut cells: Vec<&str> = line.split(',').map(str::trim).collect();
    while cells.last().is_some_and(|c| c.is_empty()) {
        cells.pop();
    }
    cells
}

fn detect_form(header: &[&str]) -> Option<TopologyForm> {
    let lower: Vec<String> = header.iter().map(|c| c.to_ascii_lowercase()).collect();
    if lower.len() == 4 && lower[1] == "m" && lower[2] == "n" && lower[3] == "k" {
        return Some(TopologyForm::Gemm);
    }
    let conv_ok = (8..=10).contains(&lower.len())
        && lower[1].contains("ifmap")
        && lower[3].contains("filter")
        && lower[5].contains("channel")
        && lower[7].contains("stride");
    conv_ok.then_some(TopologyForm::Conv)
}

/// Whether a layer name suggests a depthwise convolution (`dw`, `depthwise`, `dwise`), for the note that a CSV
/// without a `Groups` column simulates it as dense.
pub fn looks_depthwise(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("depthwise")
        || n.contains("dwise")
        || n.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|t| t == "dw" || t.starts_with("dw") && t[2..].chars().all(|c| c.is_ascii_digit()))
}

/// Writes layers as a SCALE-Sim convolution topology CSV (GEMM layers as their `M × K` IFMAP with a `1 × K`
/// filter, the same rewriting SCALE-Sim applies to its GEMM form). Stride width goes in a 9th column when it
/// differs from the stride height.
pub fn to_scalesim_csv(layers: &[Layer]) -> String {
    use super::layer::LayerShape;
    let mut out = String::from(
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n",
    );
    for l in layers {
        let row = match l.shape {
            LayerShape::Conv {
                ifmap_h,
                ifmap_w,
                filter_h,
                filter_w,
                channels,
                num_filters,
                stride_h,
                stride_w,
                ..
            } => {
                let mut r = format!(
                    "{}, {ifmap_h}, {ifmap_w}, {filter_h}, {filter_w}, {channels}, {num_filters}, {stride_h},",
                    l.name
                );
                if stride_w != stride_h {
                    r.push_str(&format!(" {stride_w},"));
                }
                r
            }
            LayerShape::Gemm { m, n, k } => format!("{}, {m}, {k}, 1, {k}, 1, {n}, 1,", l.name),
        };
        out.push_str(&row);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systolic::layer::GemmDims;

    const CONV: &str = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n\
                        conv1, 34, 34, 3, 3, 3, 16, 1,\n\
                        \n\
                        down, 34, 34, 3, 3, 16, 32, 2, 2,\n";

    #[test]
    fn parses_conv_form_with_trailing_commas() {
        let layers = parse_topology(CONV, "t.csv", OfmapRounding::Floor).unwrap();
        assert_eq!(layers.len(), 2);
        assert_eq!(layers[0].name, "conv1");
        assert_eq!(
            layers[0].gemm_dims(),
            GemmDims {
                m: 1024,
                n: 16,
                k: 27
            }
        );
        assert_eq!(layers[1].ofmap_hw(), (16, 16));
    }

    #[test]
    fn parses_gemm_form() {
        let t = "Layer, M, N, K,\nfc1, 1, 64, 1568,\n";
        let layers = parse_topology(t, "g.csv", OfmapRounding::Floor).unwrap();
        assert_eq!(
            layers[0].gemm_dims(),
            GemmDims {
                m: 1,
                n: 64,
                k: 1568
            }
        );
    }

    #[test]
    fn round_trips_through_csv() {
        let layers = parse_topology(CONV, "t.csv", OfmapRounding::Floor).unwrap();
        let again =
            parse_topology(&to_scalesim_csv(&layers), "u.csv", OfmapRounding::Floor).unwrap();
        assert_eq!(layers, again);
    }

    #[test]
    fn groups_column_maps_each_group_to_its_own_gemm() {
        let t = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides, Groups,\n\
                 dw1, 10, 10, 3, 3, 4, 4, 1, 4,\n\
                 pw1, 8, 8, 1, 1, 4, 8, 1, 1,\n\
                 g2, 10, 10, 3, 3, 4, 6, 1, 2,\n";
        let layers = parse_topology(t, "t.csv", OfmapRounding::Floor).unwrap();
        let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            ["dw1[g0]", "dw1[g1]", "dw1[g2]", "dw1[g3]", "pw1", "g2[g0]", "g2[g1]"]
        );
        // Depthwise: 4 GEMMs of K = 9, N = 1 (4·64·9 MACs), not one dense K = 36, N = 4 (16·64·9).
        assert_eq!(layers[0].gemm_dims(), GemmDims { m: 64, n: 1, k: 9 });
        let dw_macs: u64 = layers[..4].iter().map(|l| l.macs()).sum();
        assert_eq!(dw_macs, 4 * 64 * 9);
        assert_eq!(layers[5].gemm_dims(), GemmDims { m: 64, n: 3, k: 18 });
        let bad = t.replace(
            "g2, 10, 10, 3, 3, 4, 6, 1, 2,",
            "g2, 10, 10, 3, 3, 4, 6, 1, 4,",
        );
        let e = parse_topology(&bad, "t.csv", OfmapRounding::Floor)
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.csv:4") && e.contains("groups = 4"), "{e}");
        assert!(
            looks_depthwise("conv_dw_3")
                && looks_depthwise("DepthwiseConv")
                && looks_depthwise("dw1")
        );
        assert!(!looks_depthwise("down") && !looks_depthwise("conv1"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let t = "Layer, M, N, K,\nfc1, 1, x, 3,\n";
        let e = parse_topology(t, "g.csv", OfmapRounding::Floor)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("g.csv:2:") && e.contains("`x`"), "{e}");
        let t = "Layer, M, N, K,\nfc1, 1, 0, 3,\n";
        let e = parse_topology(t, "g.csv", OfmapRounding::Floor)
            .unwrap_err()
            .to_string();
        assert!(e.contains("g.csv:2") && e.contains("N = 0"), "{e}");
        let e = parse_topology("a,b\n", "h.csv", OfmapRounding::Floor)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unrecognised header"), "{e}");
        let e = parse_topology("Layer, M, N, K,\n", "h.csv", OfmapRounding::Floor).unwrap_err();
        assert!(matches!(e, TopologyError::Empty { .. }));
    }
}
