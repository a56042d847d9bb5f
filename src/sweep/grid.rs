//! Voltage grids: a comma list of voltages and `START:STOP:STEP` ranges (both ends inclusive), in volts, e.g.
//! `0.75:1.0:0.025,1.1,1.15` or `0.9,0.85,0.8`. See docs/run-and-sweep.md (`--grid`).
use super::SweepError;

/// Largest number of distinct points a grid may have (a typo such as a step of 0.00001 V should fail, not run
/// for days).
pub const MAX_GRID_POINTS: usize = 1000;
/// Resolution of the grid: every voltage is rounded to 1 µV, so a smaller step would only repeat points.
pub const GRID_RESOLUTION_V: f64 = 1e-6;
/// Allowed voltages, volts: `(0, MAX_GRID_V]` (the hardware config narrows it further).
pub const MAX_GRID_V: f64 = 5.0;

/// Parses a voltage grid spec into distinct voltages sorted **descending** (nominal first, the order in which
/// nested faults accumulate). Values are rounded to 1 µV so that `0.7:0.9:0.01` yields exact-looking numbers.
///
/// A range `START:STOP:STEP` has `floor(|STOP − START| / STEP) + 1` points; the count is checked against
/// [`MAX_GRID_POINTS`] in floating point **before** any point is generated, so an absurd step (`1e-300`) is an
/// error instead of an integer overflow. The step must lie in `[GRID_RESOLUTION_V, MAX_GRID_V]`.
pub fn parse_voltage_grid(spec: &str) -> Result<Vec<f64>, SweepError> {
    let bad = |msg: String| SweepError::Grid {
        spec: spec.to_string(),
        msg,
    };
    let parse = |s: &str| -> Result<f64, SweepError> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{}` is not a number (volts)", s.trim())))?;
        if !(v.is_finite() && v > 0.0 && v <= MAX_GRID_V) {
            return Err(bad(format!(
                "voltage {v} V is out of range; allowed (0, {MAX_GRID_V}] V"
            )));
        }
        Ok(v)
    };
    let mut out: Vec<f64> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item.contains(':') {
            let parts: Vec<&str> = item.split(':').collect();
            if parts.len() != 3 {
                return Err(bad(format!("`{item}`: expected START:STOP:STEP (volts)")));
            }
            let (a, b) = (parse(parts[0])?, parse(parts[1])?);
            let step: f64 = parts[2].trim().parse().map_err(|_| {
                bad(format!(
                    "step `{}` is not a number (volts)",
                    parts[2].trim()
                ))
            })?;
            if !(step.is_finite() && (GRID_RESOLUTION_V..=MAX_GRID_V).contains(&step)) {
                return Err(bad(format!(
                    "step {} V in `{item}` is out of range; allowed {GRID_RESOLUTION_V}..={MAX_GRID_V} V",
                    parts[2].trim()
                )));
            }
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            // Counted in f64 first: (hi - lo) / step is at most 5e6 here, but stays checked whatever the bounds.
            let n_f = ((hi - lo) / step + 1e-9).floor() + 1.0;
            if !(n_f.is_finite() && n_f + out.len() as f64 <= MAX_GRID_POINTS as f64) {
                return Err(bad(format!(
                    "`{item}` has {n_f:.0} points; allowed at most {MAX_GRID_POINTS} points in the whole grid"
                )));
            }
            let n = n_f as usize;
            out.extend((0..n).map(|i| hi - i as f64 * step));
        } else {
            out.push(parse(item)?);
            if out.len() > MAX_GRID_POINTS {
                return Err(bad(format!(
                    "more than {MAX_GRID_POINTS} points; allowed at most {MAX_GRID_POINTS}"
                )));
            }
        }
    }
    for v in out.iter_mut() {
        // An integer number of µV divided by 1e6 is the double nearest to the decimal (0.825, not 0.8250000000000001).
        *v = (*v * 1e6).round() / 1e6;
    }
    out.sort_by(|a, b| b.total_cmp(a));
    out.dedup();
    if out.is_empty() {
        return Err(bad(
            "no voltages; allowed: volts and START:STOP:STEP ranges, e.g. 1.15,1.0:0.8:0.025"
                .into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_and_list() {
        assert_eq!(
            parse_voltage_grid("0.7:0.9:0.05").unwrap(),
            vec![0.9, 0.85, 0.8, 0.75, 0.7]
        );
        assert_eq!(
            parse_voltage_grid("0.9:0.7:0.1").unwrap(),
            vec![0.9, 0.8, 0.7]
        );
        assert_eq!(parse_voltage_grid("0.8, 0.9,0.8").unwrap(), vec![0.9, 0.8]);
        assert_eq!(parse_voltage_grid("0.85").unwrap(), vec![0.85]);
        assert_eq!(parse_voltage_grid("0.7:0.9:0.01").unwrap().len(), 21);
        assert_eq!(
            parse_voltage_grid("0.8:0.9:0.05, 1.15,0.9").unwrap(),
            vec![1.15, 0.9, 0.85, 0.8]
        );
        let g = parse_voltage_grid("1.0:0.8:0.025").unwrap();
        assert_eq!(g[7], 0.825);
    }

    #[test]
    fn bad_specs_are_errors() {
        for spec in [
            "",
            "a",
            "0.7:0.9",
            "0.7:0.9:0",
            "0.7:0.9:-1",
            "-1,0.8",
            "0.7:0.9:1e-9",
            "1:2:x",
            "nan",
            "1.0,0.95:0.8:1e-300",
            "0.8:0.9:inf",
            "0.8:0.9:nan",
            "0.8:0.9:6",
            "0.001:5:0.001",
        ] {
            let err = parse_voltage_grid(spec).unwrap_err().to_string();
            assert!(err.contains("--grid"), "{spec}: {err}");
            assert!(
                err.contains("allowed") || err.contains("expected") || err.contains("not a number"),
                "{spec}: {err}"
            );
        }
    }

    #[test]
    fn point_limit_is_exact() {
        // 1000 points exactly: 0.001..=1.0 in 1 mV steps.
        assert_eq!(
            parse_voltage_grid("0.001:1.0:0.001").unwrap().len(),
            MAX_GRID_POINTS
        );
        assert!(parse_voltage_grid("0.001:1.0:0.001,1.5").is_err());
        let list: Vec<String> = (1..=1001)
            .map(|i| format!("{}", i as f64 * 0.001))
            .collect();
        assert!(parse_voltage_grid(&list.join(",")).is_err());
    }
}
