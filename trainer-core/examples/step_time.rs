//! Time of one `burgers` training step (sampling, forward with Taylor jets, one backward per
//! task, gradient method, Adam) at several widths. Prints `width ms_per_step` lines; the
//! driver `bench/step-time.sh` runs it beside the PyTorch reference and prints the ratio.
//!
//! Usage: step_time [--widths 50,128,512] [--depth 5] [--steps 30] [--warmup 5] [--method adam]
//!                  [--device cpu|cpu-tch|cuda:N]   (cpu-tch and cuda:N need `--features tch`)
//!                  [--backward explicit|autodiff]  (how ∇θ is computed; default explicit)
//!                  [--max-chunks K]  (row chunks of the explicit pass; default: the device's)
//!
//! Every step reads its losses back to the host, so on a GPU the time is the step's real time,
//! not just the time to queue its kernels.

use std::time::Instant;

use trainer_core::backprop::Chunks;
use trainer_core::{TrainConfig, Trainer};

// The modsync binary's allocator: the step allocates a tensor per op, and glibc malloc returns
// the large ones to the kernel each time (page faults were ~20 % of a width-50 step's profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let widths: Vec<usize> = arg(&args, "--widths", "50,128,512")
        .split(',')
        .map(|w| w.parse().expect("width"))
        .collect();
    let depth: usize = arg(&args, "--depth", "5").parse().expect("depth");
    let steps: u64 = arg(&args, "--steps", "30").parse().expect("steps");
    let warmup: u64 = arg(&args, "--warmup", "5").parse().expect("warmup");
    let method = arg(&args, "--method", "adam");
    let device_name = arg(&args, "--device", "cpu");
    let backward: trainer_core::backprop::Backward = arg(&args, "--backward", "explicit")
        .parse()
        .unwrap_or_else(|e| {
            eprintln!("error: --backward {e}");
            std::process::exit(2)
        });
    let device = trainer_core::parse_device(&device_name).unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2)
    });
    let max_chunks: Option<usize> = args.iter().position(|a| a == "--max-chunks").map(|_| {
        arg(&args, "--max-chunks", "")
            .parse()
            .expect("--max-chunks")
    });
    for width in widths {
        let mut config = TrainConfig {
            pde: "burgers".into(),
            method: method.clone(),
            width,
            depth,
            ..TrainConfig::default()
        };
        config.iters = trainer_core::config::MAX_ITERS; // never reached: we step by hand
        config.pde_options.test_grid = Some(2);
        let mut trainer = Trainer::new(config, &device).expect("valid config");
        trainer.set_backward(backward);
        if let Some(k) = max_chunks {
            trainer.set_chunks(Chunks {
                max_row_chunks: k,
                ..Chunks::CPU
            });
        }
        for _ in 0..warmup {
            trainer.train_step();
        }
        let t0 = Instant::now();
        for _ in 0..steps {
            trainer.train_step();
        }
        let ms = t0.elapsed().as_secs_f64() * 1e3 / steps as f64;
        println!("{width} {ms:.3}");
    }
}
