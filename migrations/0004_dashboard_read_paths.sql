-- modsync store, version 4: the read paths of the dashboard at scale (issue 17).
-- Never edit this file after it has landed: add 0005_*.sql instead (sqlx checks checksums).
--
-- Measured with bench/dashboard-scale.sh (100,000 jobs in 5 sweeps, 5,000,000 metric rows):
-- without these, `SELECT … FROM curves WHERE sweep_id = ?` (curves.csv, `modsync curves`) read
-- every result of every sweep (760 ms to the first byte), and a sweep page sorted the rows of
-- all its jobs. Applying this to a version-3 copy of that store took 0.72 s (and coordinator
-- test `migrations::version_4_applies_to_a_store_with_data` applies it to a store with data).

-- A sweep's jobs in grid order, covering what the curves and the sweep page group by: the
-- statistics per (pde, method, width) and the seeds' dots read this index instead of the jobs'
-- rows (each carries its whole config), and results.csv streams in this order without a sort.
CREATE INDEX jobs_cells ON jobs (sweep_id, pde, method, width, seed);

-- Results by completion time: the jobs-per-hour rate reads only the last hour's results.
CREATE INDEX results_finished ON results (finished_at_ms);

-- The curves view, with the same columns, definitions and values as version 1's (sample std, 0
-- for n = 1; median the middle value or the mean of the two middle values), written so that
-- SQLite pushes `WHERE sweep_id = ?` down to the jobs index: window functions partitioned by the
-- view's keys instead of CTEs joined to each other, which SQLite evaluates over every sweep
-- before filtering. `SELECT * FROM curves WHERE sweep_id = 'x'` now reads one sweep. The
-- dashboard's sweep page runs the same statement for any of the three errors (dashboard/src/
-- data.rs, `stats_sql`), so its numbers are this view's to the last bit.
DROP VIEW curves;
CREATE VIEW curves AS
SELECT sweep_id, pde, method, width, n, mean,
       CASE WHEN n > 1 THEN sqrt(ss / (n - 1)) ELSE 0.0 END AS std,
       median, min
FROM (
    SELECT sweep_id, pde, method, width, n, mean, min, rn,
           SUM((v - mean) * (v - mean)) OVER w AS ss,
           AVG(CASE WHEN rn IN ((n + 1) / 2, (n + 2) / 2) THEN v END) OVER w AS median
    FROM (
        SELECT j.sweep_id, j.pde, j.method, j.width, res.rel_l2_best AS v,
               ROW_NUMBER() OVER (PARTITION BY j.sweep_id, j.pde, j.method, j.width
                                  ORDER BY res.rel_l2_best) AS rn,
               COUNT(*) OVER p AS n,
               AVG(res.rel_l2_best) OVER p AS mean,
               MIN(res.rel_l2_best) OVER p AS min
        FROM results res JOIN jobs j ON j.id = res.job_id
        WINDOW p AS (PARTITION BY j.sweep_id, j.pde, j.method, j.width)
    )
    WINDOW w AS (PARTITION BY sweep_id, pde, method, width)
)
WHERE rn = 1;
