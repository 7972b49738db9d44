//! Network-steps per second of a pack of K `burgers` networks (one batched step for all) and of
//! one network trained alone (K separate trainers take K times as long), at several widths.
//! Prints `width K pack_net_steps_per_s alone_net_steps_per_s` lines; `bench/pack-throughput.sh`
//! runs it beside a PyTorch `torch.func` ensemble and prints the ratios.
//!
//! Usage: pack_throughput [--widths 20,50,128,512] [--ks 1,2,4,8,16] [--depth 5] [--steps 20]
//!                        [--warmup 3] [--method adam] [--device cpu|cpu-tch|cuda:N]
//!                        [--networks-per-chunk N]  (CPU: networks per parallel chunk; default 1)
//!
//! The networks differ in seed (their own points and weights); evaluation runs only at
//! iteration 0, inside the warm-up. Every pack step reads the device once, so on a GPU a step
//! is timed to its end.

use std::time::Instant;

use trainer_core::backprop::Chunks;
use trainer_core::trainer::Pack;
use trainer_core::{NoopObserver, TrainConfig, Trainer};

// The modsync binary's allocator (see step_time.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn list(args: &[String], name: &str, default: &str) -> Vec<usize> {
    arg(args, name, default)
        .split(',')
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: {v:?} is not a number"))
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let widths = list(&args, "--widths", "20,50,128,512");
    let ks = list(&args, "--ks", "1,2,4,8,16");
    let depth: usize = arg(&args, "--depth", "5").parse().expect("--depth");
    let steps: u64 = arg(&args, "--steps", "20").parse().expect("--steps");
    let warmup: u64 = arg(&args, "--warmup", "3").parse().expect("--warmup");
    let method = arg(&args, "--method", "adam");
    let device = trainer_core::parse_device(&arg(&args, "--device", "cpu")).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let per_chunk: Option<usize> =
        args.iter()
            .position(|a| a == "--networks-per-chunk")
            .map(|_| {
                arg(&args, "--networks-per-chunk", "")
                    .parse()
                    .expect("--networks-per-chunk")
            });
    let trainer = |width: usize, seed: u64| {
        let mut config = TrainConfig {
            pde: "burgers".into(),
            method: method.clone(),
            width,
            depth,
            seed,
            iters: trainer_core::config::MAX_ITERS,
            eval_every: trainer_core::config::MAX_ITERS,
            ..TrainConfig::default()
        };
        config.pde_options.test_grid = Some(2);
        let mut t = Trainer::new(config, &device).expect("valid config");
        if let Some(n) = per_chunk {
            t.set_chunks(Chunks {
                networks: n,
                ..Chunks::CPU
            });
        }
        t
    };
    for &width in &widths {
        let mut alone = trainer(width, 0);
        for _ in 0..warmup.max(1) {
            alone.train_step();
        }
        let t0 = Instant::now();
        for _ in 0..steps {
            alone.train_step();
        }
        let alone_rate = steps as f64 / t0.elapsed().as_secs_f64();
        for &k in &ks {
            let mut pack = Pack::new();
            for seed in 0..k {
                pack.join(trainer(width, seed as u64), NoopObserver)
                    .expect("same shape");
            }
            for _ in 0..warmup.max(1) {
                pack.step();
            }
            let t0 = Instant::now();
            for _ in 0..steps {
                pack.step();
            }
            let pack_rate = (k as u64 * steps) as f64 / t0.elapsed().as_secs_f64();
            println!("{width} {k} {pack_rate:.2} {alone_rate:.2}");
        }
    }
}
