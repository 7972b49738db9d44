//! Small runs in tests: a tiny config, an observer that records what a run reports, the
//! benchmarks on a small lattice, and the CPU contexts the op-level tests compute in.

use burn::tensor::Device;
use trainer_core::pde::{self, Pde, PdeOptions};
use trainer_core::tensors::Ctx;
use trainer_core::{Checkpoint, MetricsRow, Observer, Precision, TrainConfig};

/// The f64 context on the CPU backend.
pub fn ctx64() -> Ctx {
    Ctx::new(Device::flex(), Precision::F64)
}

/// The f32 context on the CPU backend.
pub fn ctx32() -> Ctx {
    Ctx::new(Device::flex(), Precision::F32)
}

/// The benchmark `name`, its 3-D collocation lattice `nc` points per axis.
pub fn benchmark(name: &str, nc: usize) -> Box<dyn Pde> {
    let options = PdeOptions {
        nc,
        ..PdeOptions::default()
    };
    pde::by_name(name, &options).expect("known PDE")
}

/// A network small enough for a test: `method` on burgers, width 8, depth 2, a 16 × 16 test
/// grid; everything else is `TrainConfig::default()`, for the test to set.
pub fn tiny(method: &str) -> TrainConfig {
    let mut c = TrainConfig {
        pde: "burgers".into(),
        method: method.into(),
        width: 8,
        depth: 2,
        ..TrainConfig::default()
    };
    c.pde_options.test_grid = Some(16);
    c
}

/// Records what a run reports: every metrics row and checkpoint, and the last step done.
/// With `stop_at`, cancels the run once that many steps are done.
#[derive(Default)]
pub struct Recorder {
    pub stop_at: Option<u64>,
    pub iter: u64,
    pub checkpoints: Vec<Checkpoint>,
    pub rows: Vec<MetricsRow>,
}

impl Observer for Recorder {
    fn on_step(&mut self, iter: u64) {
        self.iter = iter;
    }
    fn on_metrics(&mut self, row: &MetricsRow) {
        self.rows.push(row.clone());
    }
    fn on_checkpoint(&mut self, c: &Checkpoint) {
        self.checkpoints.push(c.clone());
    }
    fn should_stop(&mut self) -> bool {
        self.stop_at.is_some_and(|s| self.iter >= s)
    }
}
