//! The measured average bit error rate of the paper's 14nm SRAM against normalized voltage (docs/sram-profiles.md#measured-ber).
//!
//! `measured_ber(vdd_rel)` interpolates the seven published points log-linearly (BER spans five decades), except
//! on the last segment 0.958..1.0 where it falls linearly to exactly 0 at V_min. Below 0.75 (the lowest measured
//! point) it extrapolates the first segment's log-slope, capped at 0.5, and says so in the docs.

/// Published (vdd_rel, BER as a fraction of bit cells) points, docs/sram-profiles.md#measured-ber (0.00686646% and 0.000190735% are
/// the paper's exact plotted values).
pub const MEASURED_BER: [(f64, f64); 7] = [
    (0.75, 0.2056),
    (0.792, 0.05573),
    (0.833, 0.01115),
    (0.875, 0.00129),
    (0.917, 0.0000686646),
    (0.958, 0.00000190735),
    (1.0, 0.0),
];

/// Lowest measured normalized voltage.
pub const LOWEST_MEASURED_VDD_REL: f64 = 0.75;

/// Average BER (fraction of cells failing per access) at `vdd_rel = V/V_min`, interpolated on [`MEASURED_BER`].
/// 0 at and above 1.0; extrapolated (log-linear, capped at 0.5) below 0.75.
pub fn measured_ber(vdd_rel: f64) -> f64 {
    let pts = &MEASURED_BER;
    if vdd_rel.is_nan() {
        return f64::NAN;
    }
    if vdd_rel >= 1.0 {
        return 0.0;
    }
    if vdd_rel < pts[0].0 {
        let (v0, b0) = pts[0];
        let (v1, b1) = pts[1];
        let slope = (b0.ln() - b1.ln()) / (v1 - v0);
        return (b0.ln() + slope * (v0 - vdd_rel)).exp().min(0.5);
    }
    for w in pts.windows(2) {
        let (v0, b0) = w[0];
        let (v1, b1) = w[1];
        if vdd_rel >= v0 && vdd_rel <= v1 {
            let t = (vdd_rel - v0) / (v1 - v0);
            if b1 == 0.0 {
                return b0 * (1.0 - t);
            }
            return (b0.ln() + t * (b1.ln() - b0.ln())).exp();
        }
    }
    0.0
}

/// Inverse of [`measured_ber`] on the measured range: the `vdd_rel` in (0.75, 1.0] at which the BER equals `ber`
/// (`ber` in [0, 0.2056]; 0 maps to 1.0). Values above 0.2056 return 0.75.
pub fn vdd_rel_at_ber(ber: f64) -> f64 {
    let pts = &MEASURED_BER;
    if ber <= 0.0 {
        return 1.0;
    }
    if ber >= pts[0].1 {
        return pts[0].0;
    }
    for w in pts.windows(2) {
        let (v0, b0) = w[0];
        let (v1, b1) = w[1];
        if ber <= b0 && ber >= b1 {
            if b1 == 0.0 {
                return v0 + (1.0 - ber / b0) * (v1 - v0);
            }
            let t = (ber.ln() - b0.ln()) / (b1.ln() - b0.ln());
            return v0 + t * (v1 - v0);
        }
    }
    1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_published_points_and_is_monotone() {
        // Values typed from the published table in docs/sram-profiles.md#measured-ber (percent), independent of the table above.
        for (v, pct) in [
            (0.75, 20.56),
            (0.792, 5.573),
            (0.833, 1.115),
            (0.875, 0.129),
            (0.958, 0.000190735),
        ] {
            assert!((measured_ber(v) / (pct / 100.0) - 1.0).abs() < 1e-9, "{v}");
        }
        assert_eq!(measured_ber(1.0), 0.0);
        assert_eq!(measured_ber(1.2), 0.0);
        let mut prev = f64::INFINITY;
        for i in 0..=400 {
            let v = 0.6 + i as f64 * 0.001;
            let b = measured_ber(v);
            assert!(b <= prev && (0.0..=0.5).contains(&b), "{v}");
            prev = b;
        }
        // The user's example: 0.85 V on a V_min = 1.0 V chip lands between 0.01% and 2%.
        let b = measured_ber(0.85);
        assert!(b > 1e-4 && b < 0.02, "{b}");
    }

    #[test]
    fn inverse_round_trips() {
        for i in 0..=250 {
            let v = 0.75 + i as f64 * 0.001;
            let b = measured_ber(v);
            assert!((vdd_rel_at_ber(b) - v).abs() < 1e-9, "{v}");
        }
        assert_eq!(vdd_rel_at_ber(0.0), 1.0);
        assert_eq!(vdd_rel_at_ber(0.9), 0.75);
    }
}
