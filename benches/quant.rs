//! Quantize + de-quantize 10,000,000 floats with RQuant clipped at w_max = 0.1: the fused parallel kernels
//! against the straightforward multi-pass implementation (`quant::reference`), measured in the same run.
//!
//! Run: `cargo bench --bench quant` (set ACCELSIM_BENCH_N to change the number of values).

use std::time::Instant;

use accelsim::quant::{quantize, reference, QuantConfig};
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

fn best<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut t_best = f64::INFINITY;
    let mut last = None;
    for _ in 0..reps {
        let t = Instant::now();
        let r = f();
        t_best = t_best.min(t.elapsed().as_secs_f64());
        last = Some(r);
    }
    (t_best, last.expect("reps > 0"))
}

fn main() {
    let n: usize = std::env::var("ACCELSIM_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    let mut rng = Pcg64::seed_from_u64(3);
    // Roughly normal weights with std 0.05 (sum of uniforms), so some exceed the clipping bound.
    let w: Vec<f32> = (0..n)
        .map(|_| (0..4).map(|_| rng.gen::<f32>() - 0.5).sum::<f32>() * 0.087)
        .collect();
    let cfg = QuantConfig::rquant(8).with_w_max(0.1);
    let threads = rayon::current_num_threads();
    println!(
        "quantize + dequantize: {n} float32 values, {}; rayon threads: {threads}",
        cfg.describe()
    );
    let mut out = vec![0f32; n];
    let (t_fast, q) = best(5, || {
        let q = quantize(&w, &[n], &cfg).unwrap();
        q.dequantize_into(&mut out);
        q
    });
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let (t_fast1, _) = one.install(|| {
        best(3, || {
            let q = quantize(&w, &[n], &cfg).unwrap();
            q.dequantize_into(&mut out);
        })
    });
    let (t_ref, r) = best(3, || reference::quantize_dequantize(&w, &[n], &cfg));
    // Same answer, bit for bit.
    assert_eq!(q.codes().to_i64_vec(), r.codes);
    q.dequantize_into(&mut out);
    assert!(out
        .iter()
        .zip(&r.dequantized)
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    let codes = q.codes().as_bytes().unwrap().to_vec();
    let (t_deq, _) = best(5, || q.dequantize_u8_into(&codes, &mut out).unwrap());
    let mps = |t: f64| n as f64 / t / 1e6;
    println!("{:<44} {:>10} {:>12}", "implementation", "ms", "Mvalues/s");
    println!(
        "{:<44} {:>10.2} {:>12.1}",
        "fused parallel (quantize + dequantize_into)",
        t_fast * 1e3,
        mps(t_fast)
    );
    println!(
        "{:<44} {:>10.2} {:>12.1}",
        "fused, one thread",
        t_fast1 * 1e3,
        mps(t_fast1)
    );
    println!(
        "{:<44} {:>10.2} {:>12.1}",
        "straightforward multi-pass (reference)",
        t_ref * 1e3,
        mps(t_ref)
    );
    println!(
        "{:<44} {:>10.2} {:>12.1}",
        "dequantize_u8_into alone (table decode)",
        t_deq * 1e3,
        mps(t_deq)
    );
    println!(
        "speed-up vs multi-pass: {:.1}x ({:.1}x on one thread); target >= 2x",
        t_ref / t_fast,
        t_ref / t_fast1
    );
}
