//! Writing result files without leaving partial ones behind.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Creates `dir` (and parents) and checks that a file can be written in it, so a bad `--out`
/// fails before any work is done.
pub fn prepare_dir(dir: &Path, flag: &str) -> Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("invalid {flag}: cannot create {}", dir.display()))?;
    let probe = dir.join(".modsync-write-test");
    fs::write(&probe, b"")
        .with_context(|| format!("invalid {flag}: cannot write in {}", dir.display()))?;
    let _ = fs::remove_file(probe);
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, then a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp: PathBuf = path.with_extension("tmp");
    let mut f =
        fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("cannot move {} into place", path.display()))
}

/// Formats an f64 for CSV: shortest round-trip representation.
pub fn csv_number(v: f64) -> String {
    format!("{v}")
}
