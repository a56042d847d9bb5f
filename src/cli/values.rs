//! Value parsers for numeric flags: each flag states its real allowed range (`1..=1024`, `0..=1`), never the range
//! of the Rust type behind it, and negative numbers reach the parser (flags declare `allow_negative_numbers`) so
//! `--limit -5` is answered with the range instead of "unexpected argument '-5'".
//!
//! A parser's error is a [`ValueError`] holding the reason as a predicate (`is out of range; allowed 1..=1024`);
//! the binary prefixes the flag and the value, giving `--offsets 0 is out of range; allowed 1..=1024`.
use std::fmt;

/// Why a flag's value was refused, worded to follow "`--flag value`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

/// An unsigned integer type a flag can hold.
pub trait FlagInt:
    Copy + fmt::Display + TryFrom<i128> + Into<i128> + Send + Sync + 'static
{
    const MAX: Self;
}
macro_rules! flag_int {
    ($($t:ty),*) => {$(impl FlagInt for $t { const MAX: Self = <$t>::MAX; })*};
}
flag_int!(u8, u16, u32, u64);

/// The allowed range as users read it: `1..=1024`, or `>= 1` when only a 64-bit type bounds it from above (a
/// narrower type's maximum is a real limit and is stated).
fn describe<T: FlagInt>(lo: T, hi: T) -> String {
    if hi.into() == T::MAX.into() && hi.into() >= i128::from(u64::MAX) {
        format!(">= {lo}")
    } else {
        format!("{lo}..={hi}")
    }
}

/// Parses an integer in `lo..=hi`. `-5`, `1.5` and `abc` are all refused with the range.
pub fn int_in<T: FlagInt>(lo: T, hi: T) -> impl Fn(&str) -> Result<T, ValueError> + Clone {
    move |s: &str| {
        let allowed = describe(lo, hi);
        let t = s.trim();
        let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError(format!("is not an integer; allowed {allowed}")));
        }
        // Only digits are left, so a parse failure is an overflow of i128: far out of range.
        let v: i128 = t
            .parse()
            .map_err(|_| ValueError(format!("is out of range; allowed {allowed}")))?;
        if v < lo.into() || v > hi.into() {
            return Err(ValueError(format!("is out of range; allowed {allowed}")));
        }
        T::try_from(v).map_err(|_| ValueError(format!("is out of range; allowed {allowed}")))
    }
}

/// Parses an integer `>= lo` (no upper bound beyond the type's).
pub fn int_from<T: FlagInt>(lo: T) -> impl Fn(&str) -> Result<T, ValueError> + Clone {
    int_in(lo, T::MAX)
}

/// Parses a count of items (`usize`) `>= lo`; goes through `u64`, so the conversion only fails on targets with a
/// narrower `usize`, where it is reported as out of range.
pub fn count_from(lo: u64) -> impl Fn(&str) -> Result<usize, ValueError> + Clone {
    let p = int_from(lo);
    move |s: &str| {
        let v = p(s)?;
        usize::try_from(v).map_err(|_| ValueError(format!("is out of range; allowed >= {lo}")))
    }
}

fn parse_finite(s: &str, what: &str) -> Result<f64, ValueError> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| ValueError(format!("is not a number; allowed {what}")))?;
    if !v.is_finite() {
        return Err(ValueError(format!(
            "is not a finite number; allowed {what}"
        )));
    }
    Ok(v)
}

/// Parses a finite float accepted by `ok`; `what` states the allowed range for the message (`0..=1 (a per-bit
/// probability, not a percent)`).
pub fn float_where(
    ok: fn(f64) -> bool,
    what: &'static str,
) -> impl Fn(&str) -> Result<f64, ValueError> + Clone {
    move |s: &str| {
        let v = parse_finite(s, what)?;
        if !ok(v) {
            return Err(ValueError(format!("is out of range; allowed {what}")));
        }
        Ok(v)
    }
}

/// Parses any finite float; the range is checked later against a file (e.g. `--vdd` against the hardware
/// config's voltages, `--vdd-rel` against the profile's floor). `what` describes the value (`volts`).
pub fn finite(what: &'static str) -> impl Fn(&str) -> Result<f64, ValueError> + Clone {
    move |s: &str| {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| ValueError(format!("is not a number: expected {what}")))?;
        if !v.is_finite() {
            return Err(ValueError(format!(
                "is not a finite number: expected {what}"
            )));
        }
        Ok(v)
    }
}

/// Parses `--datapath`: `int8` or `float` (docs/datapath.md).
pub fn datapath(s: &str) -> Result<crate::config::systolic::Datapath, ValueError> {
    use crate::config::systolic::Datapath;
    Datapath::parse(s.trim()).ok_or_else(|| {
        ValueError(format!(
            "is not a datapath; allowed {}",
            Datapath::ALL.map(|d| d.name()).join(", ")
        ))
    })
}

/// A set of supply rails from one `--rails` value (`weight_sram,activation_sram`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RailSet(pub Vec<crate::config::Rail>);

/// Parses `--rails`: comma-separated rail names of the hardware config's `scaled_rails`, each at most once.
pub fn rails(s: &str) -> Result<RailSet, ValueError> {
    crate::config::Rail::parse_list(s)
        .map(RailSet)
        .map_err(ValueError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn integers_state_the_flag_range() {
        let p = int_in(1u32, 1024);
        assert_eq!(p("1"), Ok(1));
        assert_eq!(p(" 1024 "), Ok(1024));
        assert_eq!(p("+7"), Ok(7));
        for bad in [
            "0",
            "1025",
            "-1",
            "-99999999999999999999999",
            "4294967296",
            "99999999999999999999999999999999999999999",
        ] {
            assert_eq!(
                p(bad).unwrap_err().0,
                "is out of range; allowed 1..=1024",
                "{bad}"
            );
        }
        for bad in ["1.5", "abc", "", "1e3", "0x10", "nan"] {
            assert_eq!(
                p(bad).unwrap_err().0,
                "is not an integer; allowed 1..=1024",
                "{bad}"
            );
        }
        assert_eq!(
            int_from(0u64)("-1").unwrap_err().0,
            "is out of range; allowed >= 0"
        );
        assert_eq!(
            count_from(1)("0").unwrap_err().0,
            "is out of range; allowed >= 1"
        );
        assert!(!int_in(0u8, 8)("300").unwrap_err().0.contains("255"));
        // A 32-bit seed's maximum is a real limit, so it is stated.
        assert_eq!(
            int_from(0u32)("4294967296").unwrap_err().0,
            "is out of range; allowed 0..=4294967295"
        );
    }

    #[test]
    fn floats_state_the_flag_range() {
        let p = float_where(
            |p| (0.0..=1.0).contains(&p),
            "0..=1 (a per-bit probability)",
        );
        assert_eq!(p("0.25"), Ok(0.25));
        assert_eq!(p("1"), Ok(1.0));
        assert_eq!(
            p("-0.1").unwrap_err().0,
            "is out of range; allowed 0..=1 (a per-bit probability)"
        );
        assert_eq!(
            p("1.5").unwrap_err().0,
            "is out of range; allowed 0..=1 (a per-bit probability)"
        );
        assert_eq!(
            p("nan").unwrap_err().0,
            "is not a finite number; allowed 0..=1 (a per-bit probability)"
        );
        assert_eq!(
            p("x").unwrap_err().0,
            "is not a number; allowed 0..=1 (a per-bit probability)"
        );
        assert_eq!(finite("volts")("-1"), Ok(-1.0));
        assert_eq!(
            finite("volts")("x").unwrap_err().0,
            "is not a number: expected volts"
        );
        assert!(finite("volts")("inf").is_err());
    }

    proptest! {
        /// Against the obvious reference: accepted exactly when the decimal value lies in the range.
        #[test]
        fn int_in_matches_the_reference(v in -5000i64..5000, lo in 0u32..100, span in 0u32..3000) {
            let hi = lo + span;
            let got = int_in(lo, hi)(&v.to_string());
            let want = v >= lo as i64 && v <= hi as i64;
            prop_assert_eq!(got.is_ok(), want);
            if want {
                prop_assert_eq!(got.unwrap() as i64, v);
            }
        }
    }
}
