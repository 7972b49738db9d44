-- modsync store, version 6: one definition of the curves' statistics (issue 28).
-- Never edit this file after it has landed: add 0007_*.sql instead (sqlx checks checksums).
--
-- Until version 5 the `curves` view computed the statistics of `rel_l2_best` and the dashboard's
-- sweep page repeated its SQL for each of the three errors of a result. Now `curve_seeds`
-- computes them once, for every error, and everything else reads it: `curve_stats` (one row per
-- cell and error), `curves` (version 5's columns and rows: `curve_stats` for `rel_l2_best`), the
-- dashboard's sweep page (statistics and seed dots, dashboard/src/pages/sweep.rs), curves.csv and
-- `modsync curves`. Same definitions and numbers as version 5, to the last bit (sample std, 0 for
-- n = 1; median the middle value or the mean of the two middle values; coordinator test
-- `migrations::version_6_computes_version_5s_numbers_for_every_error` compares them).
--
-- A filter on the keys (`WHERE sweep_id = ? AND pde = ? AND metric = ?`) still reaches the
-- jobs index: every window is partitioned by all of them. The errors come from a table, not a
-- VALUES list or a UNION ALL: SQLite flattens a join with a table into the windows' query, but
-- not a compound subquery, which cost one more sort of every row (EXPLAIN QUERY PLAN; about
-- 1.5 times the time of a whole sweep's curves on bench/dashboard-scale.sh's store).

-- The errors of a result that the curves are over: the names of `results` columns.
CREATE TABLE curve_metrics (metric TEXT PRIMARY KEY) WITHOUT ROWID;
INSERT INTO curve_metrics (metric) VALUES ('rel_l2_best'), ('rel_l2_min_loss'), ('rel_l2_last');

-- One row per result and error: the seed's value, its rank by value in its cell (1 = smallest;
-- ties in no particular order), and the cell's statistics over seeds. A cell is a (sweep_id,
-- pde, method, series, width); `metric` names the error.
CREATE VIEW curve_seeds AS
SELECT sweep_id, pde, method, series, width, metric, job_id, seed, v AS value, rn AS rank, n,
       mean, CASE WHEN n > 1 THEN sqrt(ss / (n - 1)) ELSE 0.0 END AS std, median, min, max
FROM (
    SELECT sweep_id, pde, method, series, width, metric, job_id, seed, v, rn, n, mean, min, max,
           SUM((v - mean) * (v - mean)) OVER w AS ss,
           AVG(CASE WHEN rn IN ((n + 1) / 2, (n + 2) / 2) THEN v END) OVER w AS median
    FROM (
        SELECT sweep_id, pde, method, series, width, metric, job_id, seed, v,
               ROW_NUMBER() OVER (PARTITION BY sweep_id, pde, method, series, width, metric
                                  ORDER BY v) AS rn,
               COUNT(*) OVER p AS n,
               AVG(v) OVER p AS mean,
               MIN(v) OVER p AS min,
               MAX(v) OVER p AS max
        FROM (
            SELECT j.sweep_id, j.pde, j.method, j.series, j.width, e.metric, j.id AS job_id,
                   j.seed,
                   CASE e.metric WHEN 'rel_l2_best' THEN res.rel_l2_best
                                 WHEN 'rel_l2_min_loss' THEN res.rel_l2_min_loss
                                 WHEN 'rel_l2_last' THEN res.rel_l2_last END AS v
            FROM curve_metrics e
                 CROSS JOIN jobs j JOIN results res ON res.job_id = j.id
        )
        WINDOW p AS (PARTITION BY sweep_id, pde, method, series, width, metric)
    )
    WINDOW w AS (PARTITION BY sweep_id, pde, method, series, width, metric)
);

-- One row per cell with at least one result, and error.
CREATE VIEW curve_stats AS
SELECT sweep_id, pde, method, series, width, metric, n, mean, std, median, min, max
FROM curve_seeds
WHERE rank = 1;

-- Version 5's view, the same columns and rows: the statistics of `rel_l2_best`.
DROP VIEW curves;
CREATE VIEW curves AS
SELECT sweep_id, pde, method, series, width, n, mean, std, median, min
FROM curve_stats
WHERE metric = 'rel_l2_best';
