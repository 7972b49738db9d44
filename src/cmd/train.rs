//! `modsync train`: one run with a progress bar, a summary line, and optionally `result.json`
//! and `metrics.csv` in `--out`.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{ArgAction, Args};
use indicatif::{ProgressBar, ProgressStyle};
use trainer_core::config::PdeOptions;
use trainer_core::pde::{BoundaryLoss, Reading};
use trainer_core::{Checkpoint, MetricsRow, Observer, Precision, TrainConfig, Trainer};

use report::files::{prepare_dir, write_atomic};
use report::metrics_csv::MetricsCsv;

/// The flags of `modsync train`. Every default is trainer-core's (`TrainConfig::default()`), so
/// `modsync train` without flags trains exactly the default config; tests/train_cli.rs holds every
/// scalar field of `TrainConfig` to having a flag or a reason not to.
#[derive(Args)]
pub struct TrainArgs {
    #[arg(long, default_value_t = TrainConfig::default().pde, help = pde_help())]
    pde: String,
    /// Gradient method (see `modsync methods`).
    #[arg(long, default_value_t = TrainConfig::default().method)]
    method: String,
    /// Hidden units per layer.
    #[arg(long, default_value_t = TrainConfig::default().width)]
    width: usize,
    /// Hidden layers.
    #[arg(long, default_value_t = TrainConfig::default().depth)]
    depth: usize,
    /// Optimisation steps.
    #[arg(long, default_value_t = TrainConfig::default().iters)]
    iters: u64,
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Adam learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    lr: f64,
    /// `--no-lr-decay` turns the StepLR schedule off.
    #[arg(
        long = "no-lr-decay",
        action = ArgAction::SetFalse,
        default_value_t = TrainConfig::default().lr_decay,
        help = lr_decay_help(),
    )]
    lr_decay: bool,
    /// Evaluate on the test grid every this many iterations.
    #[arg(long, default_value_t = TrainConfig::default().eval_every)]
    eval_every: u64,
    /// f32 or f64.
    #[arg(long, default_value = precision_name(TrainConfig::default().precision), value_parser = parse_precision)]
    precision: Precision,
    /// Points per axis of the 3-D collocation lattice.
    #[arg(long, default_value_t = PdeOptions::default().nc)]
    nc: usize,
    /// Points per axis of the test grid (default: the benchmark's).
    #[arg(long)]
    test_grid: Option<usize>,
    /// The reading of the benchmarks: paper (what the paper's sources do: L_b's groups, the
    /// condition sampling, which methods decay the lr; docs/readings.md) or spec_v1 (our first
    /// reading, that of every result stored before 2026-12-06).
    #[arg(long, default_value = PdeOptions::default().reading.name(), value_parser = parse_reading)]
    reading: Reading,
    /// Overrides the reading's L_b: grouped (the sources' groups), sum_of_means (one mean per
    /// condition, summed) or pooled_mean (the paper's eq. (2): one mean over all points).
    #[arg(long, value_parser = parse_boundary_loss)]
    boundary_loss: Option<BoundaryLoss>,
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

/// `--no-lr-decay`'s help, with the schedule it turns off.
fn lr_decay_help() -> String {
    let c = TrainConfig::default();
    format!(
        "Turn off the StepLR schedule (×{} every {} iterations)",
        c.lr_decay_gamma, c.lr_decay_every
    )
}

/// A precision by its name in configs (`f32`, `f64`): trainer-core's serde names.
fn parse_precision(s: &str) -> Result<Precision, String> {
    serde_json::from_value(serde_json::Value::from(s))
        .map_err(|_| format!("expected f32 or f64, got {s:?}"))
}

fn parse_boundary_loss(s: &str) -> Result<BoundaryLoss, String> {
    BoundaryLoss::parse(s)
        .ok_or_else(|| format!("expected {}, got {s:?}", BoundaryLoss::NAMES.join(" or ")))
}

fn parse_reading(s: &str) -> Result<Reading, String> {
    Reading::parse(s).ok_or_else(|| format!("expected {}, got {s:?}", Reading::NAMES.join(" or ")))
}

fn precision_name(p: Precision) -> String {
    match serde_json::to_value(p) {
        Ok(serde_json::Value::String(name)) => name,
        other => unreachable!("Precision serialises to its name, not {other:?}"),
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
            lr_decay: self.lr_decay,
            eval_every: self.eval_every,
            precision: self.precision,
            ..TrainConfig::default()
        };
        c.pde_options.nc = self.nc;
        c.pde_options.test_grid = self.test_grid.or(c.pde_options.test_grid);
        c.pde_options.reading = self.reading;
        c.pde_options.boundary_loss = self.boundary_loss;
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
    println!("{}", report::run::summary(&result));
    if let Some(dir) = &args.out {
        let json = serde_json::to_vec_pretty(&result).expect("result serialises");
        write_atomic(&dir.join("result.json"), &json)?;
    }
    Ok(())
}
