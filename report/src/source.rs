//! Where the read commands (`sql`, `status`, `curves`, `history`) get their answers: a
//! coordinator over gRPC, or a store file opened read-only in this process (after `sweep run`
//! the coordinator is gone, the file stays). Both return the same messages, so the commands
//! print the same output either way, and both run the coordinator's read code: the file side
//! is `coordinator::Reader`, the very reads (and Query guard) the coordinator serves.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use coordinator::{Reader, ServeConfig};
use modsync_client::Client;
use modsync_proto::{
    CurvePoint, GetCurvesRequest, GetSweepRequest, ListSweepsRequest, QueryRequest, QueryResponse,
    SweepSummary,
};
use tokio::runtime::Runtime;
use tonic::Status;

/// An open source and the runtime its calls run on.
pub struct Source {
    rt: Runtime,
    kind: Kind,
}

enum Kind {
    Coordinator(Client, Box<CallError>),
    File(Reader, PathBuf),
}

/// Turns a failed call (`what`: the command) into one line a user can act on.
pub type CallError = dyn Fn(&str, Status) -> anyhow::Error + Send;

/// The tokio runtime of one command. Multi-threaded: `sweep run` serves, trains and reports in
/// one process.
pub fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start the async runtime: {e}"))
}

/// The limits a `--db` Query runs under: the coordinator's defaults, so a statement that runs
/// against a coordinator also runs (and is cut) the same way against its file.
fn file_limits() -> ServeConfig {
    ServeConfig::default()
}

impl Source {
    /// The store file at `path`, opened read-only (`invalid --db` when it cannot be).
    pub fn file(path: &Path) -> Result<Source> {
        let rt = runtime()?;
        let reader = rt
            .block_on(Reader::open(path))
            .map_err(|e| anyhow!("invalid --db: {e}"))?;
        Ok(Source {
            rt,
            kind: Kind::File(reader, path.to_path_buf()),
        })
    }

    /// A coordinator's answers through `client`, which lives on `rt`; `error` describes a
    /// failed call.
    pub fn coordinator(rt: Runtime, client: Client, error: Box<CallError>) -> Source {
        Source {
            rt,
            kind: Kind::Coordinator(client, error),
        }
    }

    /// Every sweep with its counts by state.
    pub fn list_sweeps(&mut self, what: &str) -> Result<Vec<SweepSummary>> {
        match &mut self.kind {
            Kind::Coordinator(client, error) => Ok(self
                .rt
                .block_on(client.list_sweeps(ListSweepsRequest {}))
                .map_err(|s| error(what, s))?
                .into_inner()
                .sweeps),
            Kind::File(reader, _) => self
                .rt
                .block_on(reader.list_sweeps())
                .map_err(|e| anyhow!("{what}: {e}")),
        }
    }

    /// One sweep with its counts by state.
    pub fn get_sweep(&mut self, what: &str, sweep_id: &str) -> Result<SweepSummary> {
        match &mut self.kind {
            Kind::Coordinator(client, error) => Ok(self
                .rt
                .block_on(client.get_sweep(GetSweepRequest {
                    sweep_id: sweep_id.to_string(),
                }))
                .map_err(|s| error(what, s))?
                .into_inner()),
            Kind::File(reader, _) => self
                .rt
                .block_on(reader.get_sweep(sweep_id))
                .map_err(|e| anyhow!("{what}: {e}")),
        }
    }

    /// The capacity-scaling curve points of a sweep.
    pub fn curves(&mut self, what: &str, sweep_id: &str) -> Result<Vec<CurvePoint>> {
        match &mut self.kind {
            Kind::Coordinator(client, error) => Ok(self
                .rt
                .block_on(client.get_curves(GetCurvesRequest {
                    sweep_id: sweep_id.to_string(),
                }))
                .map_err(|s| error(what, s))?
                .into_inner()
                .points),
            Kind::File(reader, _) => self
                .rt
                .block_on(reader.curves(sweep_id))
                .map_err(|e| anyhow!("{what}: {e}")),
        }
    }

    /// Read-only SQL; `max_rows` 0 means the cap. With `--db` the text check, the read-only
    /// connection and the limits are the coordinator's own (its defaults).
    pub fn query(&mut self, what: &str, sql: &str, max_rows: u32) -> Result<QueryResponse> {
        match &mut self.kind {
            Kind::Coordinator(client, error) => Ok(self
                .rt
                .block_on(client.query(QueryRequest {
                    sql: sql.to_string(),
                    max_rows,
                }))
                .map_err(|s| error(what, s))?
                .into_inner()),
            Kind::File(reader, _) => {
                let limits = file_limits();
                let cap = limits.max_query_rows;
                let rows = match max_rows as usize {
                    0 => cap,
                    n if n > cap => {
                        bail!(
                            "invalid --max-rows: {n} is more than the {cap} rows a query may return"
                        )
                    }
                    n => n,
                };
                self.rt
                    .block_on(reader.query(
                        sql,
                        rows,
                        limits.query_timeout(),
                        limits.max_message_bytes,
                    ))
                    .map_err(|e| anyhow!("{what}: {e}"))
            }
        }
    }

    /// Which row cap applies when none was asked for, for the note on a cut result.
    pub fn row_cap_note(&self) -> String {
        match &self.kind {
            Kind::Coordinator(..) => "the coordinator's limit on rows per query \
                 (modsync coordinator --max-query-rows, default 10000) or on message size \
                 (--max-message-bytes)"
                .to_string(),
            Kind::File(_, path) => format!(
                "the limit on rows per query ({}) or on bytes ({} MiB) of reads from {}",
                file_limits().max_query_rows,
                file_limits().max_message_bytes >> 20,
                path.display()
            ),
        }
    }
}
