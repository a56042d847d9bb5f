//! Reading stored activations back through faulty activation-SRAM cells (docs/activation-faults.md), per image
//! of the shipped Fashion-MNIST CNN's stored maps (784, 3136, 1568, 64 codes; layers 0..3, ping-pong buffers),
//! on `14nm_sram` with `activation_sram` scaled. Measured in the same run: a plain copy of the maps (what a
//! fault-free engine does with them anyway), the dense per-bit method (one uniform draw per stored bit, at
//! p = 1e-2), and `ActivationFaults::read_back` at `--act-ber 1e-2` and with the derived chip1-style map at 0.8 V
//! and 0.833 V (measured BER 1.1% on the weight curve).
//! Prints ns per image and ratios.
//!
//! Run: `cargo bench --bench act_faults` (ACCELSIM_BENCH_N sets the number of images, default 20000).
use std::hint::black_box;
use std::time::Instant;

use accelsim::config::{HwConfig, Rail};
use accelsim::engine::act_store::{ActivationStore, StoredMap};
use accelsim::sram::act_faults::{activation_profile, ActivationFaults};
use accelsim::sram::FaultProfile;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;

const MAPS: [[usize; 3]; 4] = [[1, 28, 28], [16, 14, 14], [32, 7, 7], [64, 1, 1]];

fn maps(seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Pcg64::seed_from_u64(seed);
    MAPS.iter()
        .map(|s| (0..s[0] * s[1] * s[2]).map(|_| rng.gen()).collect())
        .collect()
}

fn time(label: &str, images: u64, mut f: impl FnMut(u64)) -> f64 {
    f(0); // warm-up
    let t = Instant::now();
    for i in 0..images {
        f(i);
    }
    let ns = t.elapsed().as_nanos() as f64 / images as f64;
    println!("{label:<44} {ns:>10.0} ns/image");
    ns
}

fn main() {
    let images: u64 = std::env::var("ACCELSIM_BENCH_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let hw = HwConfig::load_named("14nm_sram")
        .unwrap()
        .with_rails(&[Rail::WeightSram, Rail::ActivationSram])
        .unwrap();
    let chip1 = FaultProfile::load(&FaultProfile::resolve("chip1").unwrap()).unwrap();
    let t = Instant::now();
    let act_profile = activation_profile(&hw, Some(&chip1)).unwrap();
    println!(
        "derived activation profile: {} failing cells, generated in {:.0} ms",
        act_profile.cells().len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    let clean = maps(1);
    let mut work: Vec<Vec<u8>> = clean.clone();

    let copy = time("copy of the maps (baseline)", images, |_| {
        for (w, c) in work.iter_mut().zip(&clean) {
            w.copy_from_slice(c);
        }
        black_box(&work);
    });
    let mut rng = Pcg64::seed_from_u64(7);
    let dense = time("dense per-bit draws, p = 1e-2", images, |_| {
        for (w, c) in work.iter_mut().zip(&clean) {
            for (o, &x) in w.iter_mut().zip(c) {
                let mut mask = 0u8;
                for b in 0..8 {
                    mask |= ((rng.gen::<f32>() < 0.01) as u8) << b;
                }
                *o = x ^ mask;
            }
        }
        black_box(&work);
    });
    let mut run_store = |label: &str, store: &ActivationFaults| {
        let ns = time(label, images, |i| {
            for (layer, (w, c)) in work.iter_mut().zip(&clean).enumerate() {
                w.copy_from_slice(c);
                let s = MAPS[layer];
                store.read_back(
                    &StoredMap {
                        layer,
                        shape: s,
                        image: i,
                    },
                    w,
                );
            }
            black_box(&work);
        });
        println!(
            "{:<44} {:>10.2}x copy, {:.3}x dense; measured BER {:.2e}",
            "",
            ns / copy,
            ns / dense,
            store.counts().ber()
        );
    };
    let ber = ActivationFaults::build(&hw, 1.15, None, 1e-2, 0).unwrap();
    run_store("read_back, --act-ber 1e-2 (copy included)", &ber);
    let chip = ActivationFaults::build(&hw, 0.8, Some(&act_profile), 0.0, 0).unwrap();
    run_store("read_back, derived chip1 at 0.8 V (copy incl.)", &chip);
    let chip = ActivationFaults::build(&hw, 0.833, Some(&act_profile), 0.0, 0).unwrap();
    run_store("read_back, derived chip1 at 0.833 V (copy incl.)", &chip);
}
