//! `--db FILE` or the coordinator flags: where a read command gets its answers
//! ([`report::Source`]).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use report::Source;

use crate::client::ClientArgs;

/// `--db`, plus the coordinator flags for when it is not given.
#[derive(Args, Clone, Debug)]
pub struct SourceArgs {
    /// Read this store file directly (read-only: nothing is ever written to it) instead of
    /// asking a coordinator, e.g. .modsync/quick/sweep.db after `modsync sweep run`.
    /// --coordinator, --token and --tls-ca are then ignored.
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

impl SourceArgs {
    /// Connects to the coordinator, or opens the store file read-only.
    pub fn open(&self) -> Result<Source> {
        match &self.db {
            Some(path) => Source::file(path),
            None => {
                let (rt, client) = self.client.connect()?;
                let args = self.client.clone();
                let error = move |what: &str, status| args.error(what, status);
                Ok(Source::coordinator(rt, client, Box::new(error)))
            }
        }
    }
}
