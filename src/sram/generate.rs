//! Calibrated synthetic chip generator (docs/sram-profiles.md).
//!
//! Every cell gets a weakness latent `s = ρ·z_col + sqrt(1-ρ²)·e_cell` (standard normals; `ρ` > 0 makes whole
//! columns weak, as on the paper's chips 2 and 3). Cells are ranked by `s`, weakest first, and the cell of rank
//! `i` gets the uniform score `u = (i + jitter)/N`. It fails at `vdd_rel < v_f` with
//! `v_f = measured_ber⁻¹(u / c)`, where `c = r + (1-r)/p_t` turns the per-access BER into a failing-cell fraction
//! (`r` = persistent share of the BER, `p_t` = per-access probability of a transient cell). Hence at every
//! voltage the expected per-access BER equals the measured curve to within one cell, for every seed, and the
//! failing sets are nested. Persistence is spread evenly along the rank (so `r` holds at every voltage), and the
//! kind is drawn per cell (reads-as-1 with probability `q01`, else reads-as-0; the uniform style flips).
use super::curve::{measured_ber, vdd_rel_at_ber, LOWEST_MEASURED_VDD_REL};
use super::profile::{FailingCell, FailureKind, FaultProfile, ProfileMeta};
use super::SramError;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

/// Most cells one generated profile may have (memory: 16 bytes per cell while generating). 256 arrays of 512x64.
pub const MAX_GENERATED_CELLS: u64 = 1 << 23;

/// Generator styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Roughly uniform positions, balanced 0→1 / 1→0, ~45% persistent (the paper's chip 1).
    Chip1,
    /// Column-aligned, strong 0→1 bias, ~10% persistent (chip 2).
    Chip2,
    /// Column-aligned, strong 0→1 bias, ~20% persistent (chip 3).
    Chip3,
    /// Uniform positions, every failing cell flips and is persistent: the paper's random bit error model (docs/faults.md#paper-model).
    Uniform,
}

impl std::str::FromStr for Style {
    type Err = SramError;
    fn from_str(s: &str) -> Result<Style, SramError> {
        match s {
            "chip1" => Ok(Style::Chip1),
            "chip2" => Ok(Style::Chip2),
            "chip3" => Ok(Style::Chip3),
            "uniform" => Ok(Style::Uniform),
            _ => Err(SramError::Invalid(format!(
                "unknown profile style `{s}`; allowed chip1, chip2, chip3, uniform"
            ))),
        }
    }
}

impl Style {
    /// The style's name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Style::Chip1 => "chip1",
            Style::Chip2 => "chip2",
            Style::Chip3 => "chip3",
            Style::Uniform => "uniform",
        }
    }

    /// The style's parameters (sources in the field docs of [`StyleParams`] and docs/sram-profiles.md).
    pub fn params(self) -> StyleParams {
        match self {
            // docs/sram-profiles.md#paper-chips, chip 1: p01/p = 1.27/2.744 = 0.46 and 0.38/0.866 = 0.44; p_sa/p = 0.45 and 0.45.
            Style::Chip1 => StyleParams {
                column_rho: 0.0,
                reads_one_share: 0.45,
                persistent_share: 0.45,
                transient_p_access: 0.5,
                flips: false,
            },
            // chip 2: p01/(p01+p10) = 0.76, 0.81, 0.85; p_sa/p = 0.13, 0.10, 0.07.
            Style::Chip2 => StyleParams {
                column_rho: 0.75,
                reads_one_share: 0.8,
                persistent_share: 0.1,
                transient_p_access: 0.5,
                flips: false,
            },
            // chip 3: p01/(p01+p10) = 0.79, 0.83; p_sa/p = 0.09, 0.35 (mean ≈ 0.2).
            Style::Chip3 => StyleParams {
                column_rho: 0.65,
                reads_one_share: 0.8,
                persistent_share: 0.2,
                transient_p_access: 0.5,
                flips: false,
            },
            Style::Uniform => StyleParams {
                column_rho: 0.0,
                reads_one_share: 0.5,
                persistent_share: 1.0,
                transient_p_access: 0.5,
                flips: true,
            },
        }
    }
}

/// Parameters of a generator style.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StyleParams {
    /// Correlation ρ of a cell's weakness with its column's (0 = independent cells). Chosen, not measured: the
    /// paper only says "strongly column-aligned" (docs/sram-profiles.md); ρ = 0.65–0.75 gives visibly weak columns in 64x128 segments, as in the paper's chip 2/3 figures.
    pub column_rho: f64,
    /// Share of reads-as-1 (0→1) among failing cells (table in docs/sram-profiles.md#paper-chips).
    pub reads_one_share: f64,
    /// Share of the per-access BER due to persistent cells (p_sa/p in docs/sram-profiles.md#paper-chips).
    pub persistent_share: f64,
    /// Per-access failure probability of a transient cell. Not published: 0.5 is our assumption.
    pub transient_p_access: f64,
    /// Every failing cell flips (the uniform random bit error model) instead of reading a fixed value.
    pub flips: bool,
}

impl StyleParams {
    /// Failing-cell fraction per unit of per-access BER: `r + (1-r)/p_t`.
    pub fn cells_per_ber(&self) -> f64 {
        let r = self.persistent_share;
        r + (1.0 - r) / self.transient_p_access
    }
    /// Share of failing cells that are persistent: `r / (r + (1-r)/p_t)`.
    pub fn persistent_cell_share(&self) -> f64 {
        self.persistent_share / self.cells_per_ber()
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateSpec {
    pub style: Style,
    pub arrays: u32,
    pub rows: u32,
    pub columns: u32,
    pub seed: u64,
    /// Cells failing only at or below this `vdd_rel` are not stored (0.75..1.0; default 0.75, the lowest
    /// measured point of the BER curve).
    pub floor_vdd_rel: f64,
    /// Profile name written in the header.
    pub name: String,
}

fn std_normal(rng: &mut Pcg64) -> f64 {
    // Box–Muller; u1 in (0, 1] so ln is finite.
    let u1: f64 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Rounds a failure voltage to the file's 4-decimal resolution, so a generated profile equals its reloaded file.
fn round4(v: f64) -> f64 {
    (v * 1e4).round() / 1e4
}

/// Generates a synthetic chip (see the module docs). Deterministic for a seed.
pub fn generate(spec: &GenerateSpec) -> Result<FaultProfile, SramError> {
    let cells = spec.arrays as u64 * spec.rows as u64 * spec.columns as u64;
    if cells == 0 || cells > MAX_GENERATED_CELLS {
        return Err(SramError::Invalid(format!(
            "generator size arrays*rows*columns = {cells} is out of range; allowed 1..={MAX_GENERATED_CELLS} \
             (256 arrays of 512x64)"
        )));
    }
    if !(spec.floor_vdd_rel >= LOWEST_MEASURED_VDD_REL && spec.floor_vdd_rel < 1.0) {
        return Err(SramError::Invalid(format!(
            "floor_vdd_rel = {} is out of range; allowed {LOWEST_MEASURED_VDD_REL}..1.0 (the measured BER curve)",
            spec.floor_vdd_rel
        )));
    }
    let p = spec.style.params();
    let c = p.cells_per_ber();
    let n = cells as usize;
    let mut rng = Pcg64::seed_from_u64(spec.seed);

    // Weakness latents: column part first (array-major), then one per cell in cell-index order.
    let n_cols = spec.arrays as usize * spec.columns as usize;
    let rho = p.column_rho;
    let z: Vec<f64> = if rho > 0.0 {
        (0..n_cols).map(|_| std_normal(&mut rng)).collect()
    } else {
        Vec::new()
    };
    let own = (1.0 - rho * rho).sqrt();
    let cols = spec.columns as usize;
    let rows_cols = spec.rows as usize * cols;
    let mut latent: Vec<(f64, u32)> = (0..n)
        .map(|i| {
            let e = std_normal(&mut rng);
            let s = if rho > 0.0 {
                let col = (i / rows_cols) * cols + i % cols;
                rho * z[col] + own * e
            } else {
                e
            };
            (s, i as u32)
        })
        .collect();

    // Keep only the weakest cells that can fail above the floor, ranked weakest first.
    let frac_floor = (measured_ber(spec.floor_vdd_rel) * c).min(1.0);
    let keep = ((frac_floor * n as f64).ceil() as usize + 1).min(n);
    let by_weakness = |a: &(f64, u32), b: &(f64, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if keep < n {
        latent.select_nth_unstable_by(keep, by_weakness);
        latent.truncate(keep);
    }
    latent.sort_unstable_by(by_weakness);

    let ps = p.persistent_cell_share();
    let phase: f64 = rng.gen();
    let mut out = Vec::with_capacity(keep);
    for (rank, &(_, cell)) in latent.iter().enumerate() {
        let jitter: f64 = rng.gen();
        let kind_u: f64 = rng.gen();
        let u = (rank as f64 + jitter) / n as f64;
        let fail_vdd_rel = round4(vdd_rel_at_ber(u / c));
        // Bresenham spreading: exactly floor/ceil(k·ps) persistent cells among the k weakest, for every k.
        let persistent =
            ((rank + 1) as f64 * ps + phase).floor() > (rank as f64 * ps + phase).floor();
        let kind = if p.flips {
            FailureKind::Flips
        } else if kind_u < p.reads_one_share {
            FailureKind::ReadsOne
        } else {
            FailureKind::ReadsZero
        };
        if fail_vdd_rel > spec.floor_vdd_rel {
            out.push(FailingCell {
                cell,
                fail_vdd_rel,
                kind,
                p_access: if persistent {
                    1.0
                } else {
                    p.transient_p_access
                },
            });
        }
    }
    let meta = ProfileMeta {
        name: spec.name.clone(),
        source: format!(
            "accelsim profile generate --style {} --arrays {} --rows {} --columns {} --seed {} --floor {}",
            spec.style.name(),
            spec.arrays,
            spec.rows,
            spec.columns,
            spec.seed,
            spec.floor_vdd_rel
        ),
        style: Some(spec.style.name().to_string()),
        seed: Some(spec.seed),
        arrays: spec.arrays,
        rows: spec.rows,
        columns: spec.columns,
        floor_vdd_rel: spec.floor_vdd_rel,
    };
    FaultProfile::new(meta, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(style: Style, arrays: u32, seed: u64) -> GenerateSpec {
        GenerateSpec {
            style,
            arrays,
            rows: 512,
            columns: 64,
            seed,
            floor_vdd_rel: 0.75,
            name: style.name().into(),
        }
    }

    #[test]
    fn deterministic_and_round_trips_through_text() {
        let a = generate(&spec(Style::Chip2, 2, 7)).unwrap();
        let b = generate(&spec(Style::Chip2, 2, 7)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, generate(&spec(Style::Chip2, 2, 8)).unwrap());
        let back = FaultProfile::from_bytes(a.to_text().as_bytes(), "x").unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(generate(&spec(Style::Chip1, 0, 1)).is_err());
        assert!(generate(&spec(Style::Chip1, 1000, 1)).is_err());
        let mut s = spec(Style::Chip1, 1, 1);
        s.floor_vdd_rel = 0.6;
        assert!(generate(&s).is_err());
        assert!("chip9".parse::<Style>().is_err());
    }

    /// Rates typed from docs/sram-profiles.md#measured-ber (percent), independent of `curve::MEASURED_BER`.
    const PUBLISHED: [(f64, f64); 5] = [
        (0.75, 20.56),
        (0.792, 5.573),
        (0.833, 1.115),
        (0.875, 0.129),
        (0.917, 0.00686646),
    ];

    #[test]
    fn calibrated_to_the_measured_curve_for_every_style() {
        for (style, seed) in [
            (Style::Chip1, 11),
            (Style::Chip2, 12),
            (Style::Chip3, 13),
            (Style::Uniform, 14),
        ] {
            let p = generate(&spec(style, 16, seed)).unwrap();
            for (v, pct) in PUBLISHED {
                let s = p.stats_at(v).unwrap();
                let rel = s.ber / (pct / 100.0);
                assert!(
                    (0.8..=1.2).contains(&rel),
                    "{style:?} at {v}: ber {} vs {pct}%",
                    s.ber * 100.0
                );
                assert!(s.p01 + s.p10 >= s.ber * (1.0 - 1e-12));
                assert!(s.persistent <= s.ber + 1e-12);
            }
            assert_eq!(p.stats_at(1.0).unwrap().ber, 0.0, "V_min is error-free");
        }
    }

    #[test]
    fn style_statistics_match_the_profiled_chips() {
        for (style, seed) in [
            (Style::Chip1, 21u64),
            (Style::Chip2, 22),
            (Style::Chip3, 23),
        ] {
            let p = generate(&spec(style, 16, seed)).unwrap();
            for v in [0.792, 0.833, 0.875] {
                let s = p.stats_at(v).unwrap();
                let share01 = s.p01 / (s.p01 + s.p10);
                let clust = s.column_clustering.unwrap();
                let persistent_share = s.persistent / s.ber;
                match style {
                    Style::Chip1 => {
                        assert!(
                            (0.38..=0.52).contains(&share01),
                            "{style:?} {v}: 0→1 share {share01}"
                        );
                        assert!(
                            (0.8..=1.25).contains(&clust),
                            "{style:?} {v}: clustering {clust}"
                        );
                        assert!(
                            (0.4..=0.5).contains(&persistent_share),
                            "{persistent_share}"
                        );
                    }
                    _ => {
                        assert!(share01 >= 0.7, "{style:?} {v}: 0→1 share {share01}");
                        assert!(clust > 5.0, "{style:?} {v}: clustering {clust}");
                        let want = style.params().persistent_share;
                        assert!(
                            (persistent_share - want).abs() < 0.03,
                            "{style:?} {persistent_share}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn kinds_are_unbiased_draws() {
        // The reads-as-1 share over many cells is a binomial proportion: catch a biased kind sampler.
        let p = generate(&spec(Style::Chip1, 8, 5)).unwrap();
        let cells = p.failing_at(0.8).unwrap();
        let n = cells.len() as f64;
        let ones = cells
            .iter()
            .filter(|c| c.kind == FailureKind::ReadsOne)
            .count() as f64;
        let sd = (n * 0.45 * 0.55).sqrt();
        assert!(
            n > 5000.0 && (ones - 0.45 * n).abs() < 5.0 * sd,
            "{ones} of {n}"
        );
        // Failing cells are spread over all arrays and rows (no positional bias from the ranking).
        let mut per_array = [0usize; 8];
        for c in cells {
            per_array[c.cell as usize / (512 * 64)] += 1;
        }
        let mean = n / 8.0;
        assert!(
            per_array
                .iter()
                .all(|&k| (k as f64 - mean).abs() < 6.0 * mean.sqrt()),
            "{per_array:?}"
        );
    }

    #[test]
    fn nested_across_voltage_exactly() {
        use std::collections::HashSet;
        let p = generate(&spec(Style::Chip3, 4, 9)).unwrap();
        let volts = [
            0.99, 0.95, 0.917, 0.9, 0.875, 0.85, 0.833, 0.8, 0.792, 0.76, 0.75,
        ];
        let mut prev: HashSet<u32> = HashSet::new();
        for v in volts {
            // Independent of the sorted-prefix shortcut: scan every cell.
            let now: HashSet<u32> = p
                .cells()
                .iter()
                .filter(|c| v < c.fail_vdd_rel)
                .map(|c| c.cell)
                .collect();
            assert!(
                prev.is_subset(&now),
                "faults at a higher voltage must persist at {v}"
            );
            let prefix: HashSet<u32> = p.failing_at(v).unwrap().iter().map(|c| c.cell).collect();
            assert_eq!(prefix, now);
            prev = now;
        }
    }
}
