//! Step time of every gradient method relative to `adam`, and the cost of the diagnostics.
//!
//! `cargo run --release -p trainer-core --example bench_methods -- [width] [iters] [rounds] [diag]`
//! (defaults 50, 200, 2, 1; burgers, depth 5, f32, CPU; `diag` 0 skips the diagnostics part). Methods run interleaved, `rounds`
//! times, and the median ms/step is reported, so load from other processes hits all alike.
//! Evaluation is kept out of the step timing (a 16×16 test grid, one evaluation per run);
//! the diagnostics overhead is then measured on full runs with the default evaluation.

use std::time::Instant;

use trainer_core::{NoopObserver, TrainConfig, Trainer, default_device};

/// Every method of the registry, then ModSync around a few of them.
fn methods() -> Vec<String> {
    let wrapped = ["adam", "dcgd", "config", "mconfig"].map(|m| format!("modsync+{m}"));
    trainer_core::methods::NAMES
        .iter()
        .map(|m| m.to_string())
        .chain(wrapped)
        .collect()
}

fn config(method: &str, width: usize, iters: u64) -> TrainConfig {
    let mut c = TrainConfig {
        pde: "burgers".into(),
        method: method.into(),
        width,
        depth: 5,
        iters,
        eval_every: iters,
        ..Default::default()
    };
    c.pde_options.test_grid = Some(16);
    c.diagnostics.enabled = false;
    c
}

/// Seconds per step of one run (construction excluded).
fn time_run(c: TrainConfig) -> f64 {
    let iters = c.iters as f64;
    let mut t = Trainer::new(c, &default_device()).expect("valid config");
    let start = Instant::now();
    t.run(&mut NoopObserver);
    start.elapsed().as_secs_f64() / iters
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: u64| args.get(i).map_or(d, |s| s.parse().expect("a number"));
    let width = arg(0, 50) as usize;
    let iters = arg(1, 200);
    let rounds = arg(2, 2) as usize;
    let with_diagnostics = arg(3, 1) != 0;
    println!("burgers, width {width}, depth 5, {iters} steps × {rounds} rounds (median)");

    let methods = methods();
    let mut times = vec![Vec::new(); methods.len()];
    for _ in 0..rounds {
        for (k, m) in methods.iter().enumerate() {
            times[k].push(time_run(config(m, width, iters)));
        }
    }
    let adam = median(times[0].clone());
    println!("| method | ms/step | vs adam |");
    println!("|---|---|---|");
    for (k, m) in methods.iter().enumerate() {
        let t = median(times[k].clone());
        println!("| {m} | {:.2} | {:.2}× |", 1e3 * t, t / adam);
    }

    if !with_diagnostics {
        return;
    }
    // Diagnostics: default evaluation every 100 steps (full test grid), orth_frac every
    // 1000, with the diagnostics on vs off.
    let diag_iters = 10 * iters.max(100);
    println!("\ndiagnostics overhead ({diag_iters} steps, eval_every 100, diag_every 1000)");
    println!("| method | off ms/step | on ms/step | overhead |");
    println!("|---|---|---|---|");
    for m in ["adam", "modsync+dcgd"] {
        let mut off = Vec::new();
        let mut on = Vec::new();
        for _ in 0..rounds {
            for enabled in [false, true] {
                let mut c = config(m, width, diag_iters);
                c.eval_every = 100;
                c.pde_options.test_grid = None;
                c.diagnostics.enabled = enabled;
                let t = time_run(c);
                if enabled { on.push(t) } else { off.push(t) }
            }
        }
        let (off, on) = (median(off), median(on));
        println!(
            "| {m} | {:.2} | {:.2} | {:+.1} % |",
            1e3 * off,
            1e3 * on,
            100.0 * (on / off - 1.0)
        );
    }
}
