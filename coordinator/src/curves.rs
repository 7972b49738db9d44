//! Capacity-scaling curves: the rows of the `curve_stats` view for the best relative L2 (the
//! `curves` view plus the max) for one sweep. All the statistics (n, mean, sample std, median,
//! min, max over seeds) come from the one definition of migrations/0006_curve_stats.sql
//! (`curve_seeds`, which the dashboard reads too), so `modsync curves`, `modsync sql "SELECT *
//! FROM curves"`, the dashboard and a user's own `sqlite3` session can never disagree.

use modsync_proto::CurvePoint;

use crate::error::Result;
use crate::fence::to_u64;
use crate::reader::Reader;
use crate::sweep_ops::sweep_summary;

/// One row of the `curves` view.
#[derive(sqlx::FromRow)]
struct CurveRow {
    pde: String,
    method: String,
    series: String,
    width: i64,
    n: i64,
    mean: f64,
    std: f64,
    median: f64,
    min: f64,
    max: f64,
}

impl From<CurveRow> for CurvePoint {
    fn from(r: CurveRow) -> Self {
        CurvePoint {
            pde: r.pde,
            method: r.method,
            series: r.series,
            width: to_u64(r.width),
            n: to_u64(r.n),
            mean: r.mean,
            std: r.std,
            median: r.median,
            min: r.min,
            max: r.max,
        }
    }
}

impl Reader {
    /// One point per (pde, method, series, width) that has at least one result, in that
    /// order. NOT_FOUND for an unknown sweep; empty for a sweep with no results yet.
    pub async fn curves(&self, sweep_id: &str) -> Result<Vec<CurvePoint>> {
        let mut conn = self.pool.acquire().await?;
        sweep_summary(&mut conn, sweep_id).await?;
        let rows: Vec<CurveRow> = sqlx::query_as(
            "SELECT pde, method, series, width, n, mean, std, median, min, max FROM curve_stats
             WHERE sweep_id = ? AND metric = 'rel_l2_best' ORDER BY pde, method, series, width",
        )
        .bind(sweep_id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().map(CurvePoint::from).collect())
    }
}
