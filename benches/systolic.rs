//! Speed of the closed-form systolic model: the whole ResNet-20 (20 layers) at each dataflow, plus the energy
//! model on top. Run with `cargo bench --bench systolic`. Prints the median wall time per full-network
//! simulation over many repetitions (the target is "milliseconds"; the closed form needs microseconds).
use accelsim::config::HwConfig;
use accelsim::energy::EnergyModel;
use accelsim::systolic::{read_topology, simulate_network, BufferParams, Dataflow, OfmapRounding};
use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

fn median_us(mut f: impl FnMut(), reps: usize) -> f64 {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[reps / 2]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let hw = HwConfig::load(&root.join("hw_configs/14nm_sram.toml")).expect("shipped config");
    let layers = read_topology(
        &root.join("hw_configs/topologies/resnet20.csv"),
        OfmapRounding::Floor,
    )
    .expect("shipped topology");
    let buffers = BufferParams::from_hw(&hw).expect("buffers");
    let energy = EnergyModel::new(&hw).expect("energy model");
    println!(
        "ResNet-20 ({} layers) on {}x{} ({}), median of 2000 runs:",
        layers.len(),
        hw.systolic.rows,
        hw.systolic.cols,
        hw.name
    );
    let mut total_us = 0.0;
    for df in Dataflow::ALL {
        let array = hw.systolic.array_params().expect("array").with_dataflow(df);
        let net = simulate_network(&layers, &array, &buffers, 8).expect("simulate");
        let us = median_us(
            || {
                black_box(simulate_network(black_box(&layers), &array, &buffers, 8).unwrap());
            },
            2000,
        );
        let e_us = median_us(
            || {
                black_box(energy.energy_per_inference(black_box(&net), 0.85).unwrap());
            },
            2000,
        );
        total_us += us;
        println!(
            "  {df}: simulate_network {us:8.2} us, energy_per_inference {e_us:6.3} us  \
             ({} cycles, {:.1}% utilization, {} weight-SRAM word reads)",
            net.total_cycles, net.utilization_pct, net.weight_sram_word_reads
        );
    }
    println!("  all three dataflows: {:.3} ms", total_us / 1000.0);
}
