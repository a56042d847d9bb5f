//! Voltage grids: a comma list of voltages and `START:STOP:STEP` ranges (both ends inclusive), in volts, e.g.
//! `0.75:1.0:0.025,1.1,1.15` or `0.9,0.85,0.8`.
use super::SweepError;

/// Largest number of points a grid may have (a typo such as a step of 0.0001 should fail, not run for days).
pub const MAX_GRID_POINTS: usize = 1000;

/// Parses a voltage grid spec into distinct voltages sorted **descending** (nominal first, the order in which
/// nested faults accumulate). Values are rounded to 1 µV so that `0.7:0.9:0.01` yields exact-looking numbers.
pub fn parse_voltage_grid(spec: &str) -> Result<Vec<f64>, SweepError> {
    let bad = |msg: String| SweepError::Grid {
        spec: spec.to_string(),
        msg,
    };
    let parse = |s: &str| -> Result<f64, SweepError> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{}` is not a number", s.trim())))?;
        if !v.is_finite() || v <= 0.0 || v > 5.0 {
            return Err(bad(format!("voltage {v} V is outside (0, 5] V")));
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
            let step: f64 = parts[2]
                .trim()
                .parse()
                .map_err(|_| bad(format!("step `{}` is not a number", parts[2].trim())))?;
            if !step.is_finite() || step <= 0.0 {
                return Err(bad(format!("step {step} must be > 0")));
            }
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let n = ((hi - lo) / step + 1e-9).floor() as usize + 1;
            if n + out.len() > MAX_GRID_POINTS {
                return Err(bad(format!("more than {MAX_GRID_POINTS} points")));
            }
            out.extend((0..n).map(|i| hi - i as f64 * step));
        } else {
            out.push(parse(item)?);
        }
    }
    for v in out.iter_mut() {
        *v = (*v * 1e6).round() / 1e6;
    }
    out.sort_by(|a, b| b.total_cmp(a));
    out.dedup();
    if out.is_empty() {
        return Err(bad("no voltages".into()));
    }
    if out.len() > MAX_GRID_POINTS {
        return Err(bad(format!(
            "{} points exceed the limit of {MAX_GRID_POINTS}",
            out.len()
        )));
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
        ] {
            let err = parse_voltage_grid(spec).unwrap_err().to_string();
            assert!(err.contains("grid"), "{spec}: {err}");
        }
    }
}
