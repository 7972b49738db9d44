//! `modsync reference`: a benchmark's test grid and its exact or reference solution as CSV,
//! header = the PDE's coordinate names then `u`.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Args;
use trainer_core::pde::{self, PdeOptions};

use report::files::write_atomic;

#[derive(Args)]
pub struct ReferenceArgs {
    #[arg(long, help = crate::cmd::train::pde_help())]
    pde: String,
    /// CSV file to write.
    #[arg(long)]
    out: PathBuf,
    /// Points per axis (default: the benchmark's test grid).
    #[arg(long)]
    grid: Option<usize>,
}

pub fn run(args: ReferenceArgs) -> Result<()> {
    let pde = pde::by_name(&args.pde, &PdeOptions::default()).ok_or_else(|| {
        anyhow!(
            "invalid --pde: unknown PDE {:?} (known: {})",
            args.pde,
            pde::NAMES.join(", ")
        )
    })?;
    if let Some(g) = args.grid
        && !(2..=pde::MAX_TEST_GRID).contains(&g)
    {
        return Err(anyhow!(
            "invalid --grid: must be in 2..={}, got {g}",
            pde::MAX_TEST_GRID
        ));
    }
    let csv = report::reference::csv(pde.as_ref(), args.grid);
    write_atomic(&args.out, csv.as_bytes()).map_err(|e| anyhow!("invalid --out: {e:#}"))?;
    println!(
        "wrote {} points of {} to {}",
        csv.lines().count() - 1,
        pde.name(),
        args.out.display()
    );
    Ok(())
}
