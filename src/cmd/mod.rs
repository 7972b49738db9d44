//! One module per subcommand.

pub mod cancel;
pub mod coordinator;
pub mod curves;
pub mod dashboard;
pub mod history;
pub mod methods;
pub mod reference;
pub mod retry;
pub mod sql;
pub mod status;
pub mod submit;
pub mod sweep;
pub mod train;
pub mod worker;

/// The sweep file of `submit` and `sweep run`, and how many jobs it may expand to.
#[derive(clap::Args)]
pub struct SweepFileArgs {
    /// Sweep file (TOML): name, [grid] axes (and optional [grid.axes] / [[grid.variants]]),
    /// [train] settings; see examples/quick.toml.
    file: std::path::PathBuf,
    /// Most jobs the file may expand to: a guard against an axis too many (the coordinator
    /// accepts at most 100,000 per sweep).
    #[arg(long, value_name = "N", default_value_t = sweep_spec::sweep_file::DEFAULT_MAX_JOBS)]
    max_jobs: usize,
}

impl SweepFileArgs {
    /// Reads and validates the file (nothing is sent or written before this).
    pub fn load(&self) -> anyhow::Result<sweep_spec::sweep_file::Sweep> {
        sweep_spec::sweep_file::load(&self.file, self.max_jobs).map_err(|e| anyhow::anyhow!(e))
    }
}
