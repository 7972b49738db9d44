-- modsync store, version 5: sweeps over any setting (issue 27).
-- Never edit this file after it has landed: add 0006_*.sql instead (sqlx checks checksums).
--
-- A sweep may vary any TrainConfig field on extra axes (`[grid.axes]`) and name sets of
-- settings (`[[grid.variants]]`); each combination is a series (coordinator/src/series.rs).
-- Jobs stored before this version, and jobs of sweeps without either, have the series ''.

-- The job's series label: its variant's name, then `path=value` per extra axis
-- (`sparsity_only lr=0.003`). What curves, the dashboard and `modsync history` group by.
ALTER TABLE jobs ADD COLUMN series TEXT NOT NULL DEFAULT '';

-- The same settings one per row, for SQL without parsing JSON:
--   SELECT a.value AS lr, AVG(r.rel_l2_best) FROM results r
--   JOIN job_axes a ON a.job_id = r.job_id AND a.axis = 'lr' GROUP BY a.value;
-- `axis` is the TrainConfig path (`modsync.lambda_s`) or 'variant'; `value` is a string setting
-- as it is and anything else as JSON text (`0.003`, `true`), so CAST(value AS REAL) sorts
-- numbers.
CREATE TABLE job_axes (
    job_id INTEGER NOT NULL REFERENCES jobs(id),
    axis   TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (job_id, axis)
) WITHOUT ROWID;
CREATE INDEX job_axes_by_axis ON job_axes (axis, value);

-- A sweep's jobs in grid order, series included: what the curves, the sweep page and
-- results.csv read (version 4's index without the series).
DROP INDEX jobs_cells;
CREATE INDEX jobs_cells ON jobs (sweep_id, pde, method, series, width, seed);

-- The curves view of version 4, one row per (sweep, pde, method, series, width).
DROP VIEW curves;
CREATE VIEW curves AS
SELECT sweep_id, pde, method, series, width, n, mean,
       CASE WHEN n > 1 THEN sqrt(ss / (n - 1)) ELSE 0.0 END AS std,
       median, min
FROM (
    SELECT sweep_id, pde, method, series, width, n, mean, min, rn,
           SUM((v - mean) * (v - mean)) OVER w AS ss,
           AVG(CASE WHEN rn IN ((n + 1) / 2, (n + 2) / 2) THEN v END) OVER w AS median
    FROM (
        SELECT j.sweep_id, j.pde, j.method, j.series, j.width, res.rel_l2_best AS v,
               ROW_NUMBER() OVER (PARTITION BY j.sweep_id, j.pde, j.method, j.series, j.width
                                  ORDER BY res.rel_l2_best) AS rn,
               COUNT(*) OVER p AS n,
               AVG(res.rel_l2_best) OVER p AS mean,
               MIN(res.rel_l2_best) OVER p AS min
        FROM results res JOIN jobs j ON j.id = res.job_id
        WINDOW p AS (PARTITION BY j.sweep_id, j.pde, j.method, j.series, j.width)
    )
    WINDOW w AS (PARTITION BY sweep_id, pde, method, series, width)
)
WHERE rn = 1;
