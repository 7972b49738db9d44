//! Capacity-scaling curves: the rows of the `curves` view (migrations/0005_series.sql) for one
//! sweep. All the statistics (n, mean, sample std, median, min over seeds) are computed by the
//! view, so `modsync curves`, `modsync sql "SELECT * FROM curves"` and a user's own `sqlite3`
//! session can never disagree; the max beside them tops the charts' band.

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
            "SELECT c.pde, c.method, c.series, c.width, c.n, c.mean, c.std, c.median, c.min,
                    m.max
             FROM curves c
             JOIN (SELECT j.pde, j.method, j.series, j.width, MAX(res.rel_l2_best) AS max
                   FROM results res JOIN jobs j ON j.id = res.job_id
                   WHERE j.sweep_id = ?1 GROUP BY j.pde, j.method, j.series, j.width) m
               USING (pde, method, series, width)
             WHERE c.sweep_id = ?1 ORDER BY pde, method, series, width",
        )
        .bind(sweep_id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(rows.into_iter().map(CurvePoint::from).collect())
    }
}
