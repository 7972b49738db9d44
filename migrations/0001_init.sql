-- modsync store, version 1. Applied by the coordinator at start (sqlx::migrate!).
-- Never edit this file after it has landed: add 0002_*.sql instead (sqlx checks checksums).
--
-- Conventions: times are integer milliseconds since the Unix epoch in columns named *_ms;
-- booleans are 0/1 integers; JSON is stored as TEXT.

-- One row per submitted sweep. The id is the sweep name (see coordinator::sweep::sweep_id).
CREATE TABLE sweeps (
    id            TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL UNIQUE,
    -- The last submitted spec as JSON (axes, base_config, max_attempts, priority).
    spec          TEXT NOT NULL,
    priority      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL CHECK (max_attempts >= 1),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

-- One row per grid point of a sweep: the unit of work a worker leases.
CREATE TABLE jobs (
    id                  INTEGER PRIMARY KEY,
    sweep_id            TEXT NOT NULL REFERENCES sweeps(id),
    pde                 TEXT NOT NULL,
    method              TEXT NOT NULL,
    width               INTEGER NOT NULL CHECK (width >= 1),
    seed                INTEGER NOT NULL CHECK (seed >= 0),
    -- The complete trainer-core TrainConfig, canonical JSON, and the SHA-256 hex of it.
    config_json         TEXT NOT NULL,
    config_hash         TEXT NOT NULL,
    state               TEXT NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    -- Leases taken so far (a release gives one back); the job fails when a failure or an
    -- expired lease happens with attempts >= max_attempts.
    attempts            INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts        INTEGER NOT NULL CHECK (max_attempts >= 1),
    priority            INTEGER NOT NULL DEFAULT 0,
    -- The worker holding (or, after the job left 'running', last holding) the lease.
    lease_owner         TEXT,
    -- Set exactly while state = 'running'.
    lease_expires_at_ms INTEGER,
    -- Fencing token: +1 on every lease; every worker write must carry the current value.
    token               INTEGER NOT NULL DEFAULT 0,
    -- The sweep was cancelled while this job ran: the next heartbeat answers cancel = true,
    -- and a release/failure/expiry then ends the job as 'cancelled'.
    cancel_requested    INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    last_error          TEXT,
    created_at_ms       INTEGER NOT NULL,
    updated_at_ms       INTEGER NOT NULL,
    UNIQUE (sweep_id, config_hash)
);
-- LeaseJob: the highest-priority, oldest queued job.
CREATE INDEX jobs_queue ON jobs (state, priority DESC, id);
-- The reaper: running jobs by lease expiry.
CREATE INDEX jobs_lease ON jobs (state, lease_expires_at_ms);
-- Per-sweep counts and curves.
CREATE INDEX jobs_sweep ON jobs (sweep_id, state);

-- The last checkpoint of a job (trainer-core Checkpoint::to_bytes); a new one replaces it.
CREATE TABLE checkpoints (
    job_id        INTEGER PRIMARY KEY NOT NULL REFERENCES jobs(id),
    iter          INTEGER NOT NULL CHECK (iter >= 0),
    bytes         BLOB NOT NULL,
    -- The lease (fencing token) that wrote it.
    token         INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
);

-- Evaluation rows (trainer-core MetricsRow) of every job. A resumed job that re-reports an
-- iteration replaces the row instead of duplicating it. Non-finite numbers are stored as NULL.
CREATE TABLE metrics (
    job_id        INTEGER NOT NULL REFERENCES jobs(id),
    iter          INTEGER NOT NULL CHECK (iter >= 0),
    lr            REAL,
    loss_r        REAL,
    loss_b        REAL,
    rel_l2        REAL,
    abs_err       REAL,
    abs_err_max   REAL,
    skipped_steps INTEGER NOT NULL,
    elapsed_s     REAL,
    -- Method diagnostics by name, a JSON object of numbers (null where non-finite).
    extra         TEXT NOT NULL DEFAULT '{}',
    token         INTEGER NOT NULL,
    PRIMARY KEY (job_id, iter)
) WITHOUT ROWID;

-- One row per finished job (trainer-core RunResult); the primary key makes "one result per
-- job" a guarantee, not a convention.
CREATE TABLE results (
    job_id           INTEGER PRIMARY KEY NOT NULL REFERENCES jobs(id),
    rel_l2_best      REAL NOT NULL,
    rel_l2_min_loss  REAL NOT NULL,
    rel_l2_last      REAL NOT NULL,
    abs_err_best     REAL NOT NULL,
    abs_err_max_best REAL NOT NULL,
    best_iter        INTEGER NOT NULL,
    min_loss_iter    INTEGER NOT NULL,
    iters_done       INTEGER NOT NULL,
    wall_s           REAL NOT NULL,
    iters_per_s      REAL NOT NULL,
    num_params       INTEGER NOT NULL,
    diverged         INTEGER NOT NULL CHECK (diverged IN (0, 1)),
    skipped_steps    INTEGER NOT NULL,
    -- 'finished' or 'diverged'.
    status           TEXT NOT NULL,
    device           TEXT NOT NULL,
    worker_id        TEXT NOT NULL,
    -- The complete RunResult JSON as the worker sent it.
    result           TEXT NOT NULL,
    finished_at_ms   INTEGER NOT NULL
);

-- Every worker that ever leased a job.
CREATE TABLE workers (
    id            TEXT PRIMARY KEY NOT NULL,
    host          TEXT NOT NULL,
    device        TEXT NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    jobs_done     INTEGER NOT NULL DEFAULT 0
);

-- Capacity-scaling curves: per (sweep, pde, method, width), statistics of results.rel_l2_best
-- over the seeds that finished. std is the sample standard deviation (0 for n = 1); median is
-- the middle value (odd n) or the mean of the two middle values (even n).
-- Needs SQLite's sqrt(): built into the sqlite3 shell since 3.35; the coordinator registers it
-- on its own connections.
CREATE VIEW curves AS
WITH r AS (
    SELECT j.sweep_id, j.pde, j.method, j.width, res.rel_l2_best AS v
    FROM results res JOIN jobs j ON j.id = res.job_id
),
g AS (
    SELECT sweep_id, pde, method, width, COUNT(*) AS n, AVG(v) AS mean, MIN(v) AS min
    FROM r GROUP BY sweep_id, pde, method, width
),
ranked AS (
    SELECT r.sweep_id, r.pde, r.method, r.width, r.v,
           ROW_NUMBER() OVER (PARTITION BY r.sweep_id, r.pde, r.method, r.width
                              ORDER BY r.v) AS rn
    FROM r
),
s AS (
    SELECT k.sweep_id, k.pde, k.method, k.width,
           SUM((k.v - g.mean) * (k.v - g.mean)) AS ss,
           AVG(CASE WHEN k.rn IN ((g.n + 1) / 2, (g.n + 2) / 2) THEN k.v END) AS median
    FROM ranked k
    JOIN g ON g.sweep_id = k.sweep_id AND g.pde = k.pde AND g.method = k.method
          AND g.width = k.width
    GROUP BY k.sweep_id, k.pde, k.method, k.width
)
SELECT g.sweep_id, g.pde, g.method, g.width, g.n, g.mean,
       CASE WHEN g.n > 1 THEN sqrt(s.ss / (g.n - 1)) ELSE 0.0 END AS std,
       s.median, g.min
FROM g
JOIN s ON s.sweep_id = g.sweep_id AND s.pde = g.pde AND s.method = g.method
      AND s.width = g.width;
