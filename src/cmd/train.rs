//! `modsync train`: one run with a progress bar, a summary line, and optionally `result.json`
//! and `metrics.csv` in `--out`.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use trainer_core::config::PdeOptions;
use trainer_core::{Checkpoint, MetricsRow, Observer, Precision, RunResult, TrainConfig, Trainer};

use crate::metrics_csv::MetricsCsv;
use crate::output::{prepare_dir, write_atomic};

#[derive(Args)]
pub struct TrainArgs {
    #[arg(long, default_value = "burgers", help = pde_help())]
    pde: String,
    /// Gradient method (see `modsync methods`).
    #[arg(long, default_value = "adam")]
    method: String,
    /// Hidden units per layer.
    #[arg(long, default_value_t = 50)]
    width: usize,
    /// Hidden layers.
    #[arg(long, default_value_t = 5)]
    depth: usize,
    /// Optimisation steps.
    #[arg(long, default_value_t = 50_000)]
    iters: u64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Turn off the StepLR schedule (×0.9 every 1,000 iterations).
    #[arg(long)]
    no_lr_decay: bool,
    /// Evaluate on the test grid every this many iterations.
    #[arg(long, default_value_t = 100)]
    eval_every: u64,
    /// f32 (default) or f64.
    #[arg(long, default_value = "f32", value_parser = parse_precision)]
    precision: Precision,
    /// Points per axis of the 3-D collocation lattice.
    #[arg(long, default_value_t = PdeOptions::default().nc)]
    nc: usize,
    /// Points per axis of the test grid (default: the benchmark's).
    #[arg(long)]
    test_grid: Option<usize>,
    /// Directory for result.json and metrics.csv.
    #[arg(long)]
    out: Option<PathBuf>,
    /// cpu (Burn's pure-Rust CPU backend); cuda:N (LibTorch on CUDA device N) and cpu-tch
    /// (LibTorch on the CPU) need a modsync built with --features tch.
    #[arg(long, default_value = "cpu")]
    device: String,
    #[command(flatten)]
    method_flags: crate::cmd::methods::MethodFlags,
}

/// `--pde`'s help: the benchmarks of trainer-core's registry.
pub fn pde_help() -> String {
    format!("Benchmark: {}", trainer_core::pde::NAMES.join(", "))
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    match s {
        "f32" => Ok(Precision::F32),
        "f64" => Ok(Precision::F64),
        _ => Err(format!("expected f32 or f64, got {s:?}")),
    }
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let mut c = TrainConfig {
            pde: self.pde.clone(),
            method: self.method.clone(),
            width: self.width,
            depth: self.depth,
            iters: self.iters,
            seed: self.seed,
            lr: self.lr,
            lr_decay: !self.no_lr_decay,
            eval_every: self.eval_every,
            precision: self.precision,
            ..TrainConfig::default()
        };
        c.pde_options.nc = self.nc;
        c.pde_options.test_grid = self.test_grid;
        self.method_flags.apply(&mut c)?;
        Ok(c)
    }
}

/// Progress bar plus the metrics CSV, written row by row so a killed run keeps its history.
struct CliObserver {
    bar: ProgressBar,
    csv: Option<MetricsCsv<BufWriter<File>>>,
    last_rel_l2: f64,
}

impl Observer for CliObserver {
    fn on_step(&mut self, iter: u64) {
        self.bar.set_position(iter);
    }
    fn on_metrics(&mut self, row: &MetricsRow) {
        self.last_rel_l2 = row.rel_l2;
        self.bar.set_message(format!(
            "rel_l2 {:.3e}  L_r {:.2e}  L_b {:.2e}",
            row.rel_l2, row.loss_r, row.loss_b
        ));
        if let Some(csv) = &mut self.csv
            && let Err(e) = csv.write(row)
        {
            tracing::warn!("cannot write metrics.csv: {e}");
        }
    }
    fn on_checkpoint(&mut self, _checkpoint: &Checkpoint) {}
}

pub fn run(args: TrainArgs) -> Result<()> {
    let config = args.config()?;
    config.validate()?;
    let device = trainer_core::parse_device(&args.device)?;
    let csv = match &args.out {
        Some(dir) => {
            prepare_dir(dir, "--out")?;
            let path = dir.join("metrics.csv");
            let file = File::create(&path)
                .with_context(|| format!("invalid --out: cannot create {}", path.display()))?;
            Some(MetricsCsv::new(BufWriter::new(file)))
        }
        None => None,
    };
    let mut trainer = Trainer::new(config.clone(), &device)?;
    let bar = ProgressBar::new(config.iters);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {per_sec} {msg}",
        )
        .expect("valid template"),
    );
    let mut observer = CliObserver {
        bar,
        csv,
        last_rel_l2: f64::NAN,
    };
    let result = trainer.run(&mut observer);
    observer.bar.finish_and_clear();
    println!("{}", summary(&result));
    if let Some(dir) = &args.out {
        let json = serde_json::to_vec_pretty(&result).expect("result serialises");
        write_atomic(&dir.join("result.json"), &json)?;
    }
    Ok(())
}

fn summary(r: &RunResult) -> String {
    let c = &r.config;
    format!(
        "{} {} w={} d={} seed={}: {:?} | rel_l2 best {:.4e} (iter {}) min-loss {:.4e} last {:.4e} | abs_err {:.3e} | {} iters in {:.1} s ({:.1} it/s), {} skipped",
        c.pde,
        c.method,
        c.width,
        c.depth,
        c.seed,
        r.status,
        r.rel_l2_best,
        r.best_iter,
        r.rel_l2_min_loss,
        r.rel_l2_last,
        r.abs_err_best,
        r.iters_done,
        r.wall_s,
        r.iters_per_s,
        r.skipped_steps
    )
}
