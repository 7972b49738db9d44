-- modsync store, version 2: the `workers` bookkeeping follows job updates inside SQLite.
-- Never edit this file after it has landed: add 0003_*.sql instead (sqlx checks checksums).
--
-- Why: every statement the coordinator sends is a round trip to its SQLite connection thread,
-- and the hot RPCs (LeaseJob, Heartbeat, ReportProgress, CompleteJob) each used one extra
-- statement only to update `workers`. These triggers do that update within the statement that
-- changes the job (bench/coordinator-load), with the same meaning as before.

-- A lease or a lease extension (the job is running with a new expiry): its owner is alive.
CREATE TRIGGER jobs_lease_touches_worker
AFTER UPDATE OF lease_expires_at_ms ON jobs
WHEN NEW.state = 'running' AND NEW.lease_owner IS NOT NULL
BEGIN
    UPDATE workers SET last_seen_ms = NEW.updated_at_ms WHERE id = NEW.lease_owner;
END;

-- A completion: the worker that held the lease finished one more job.
CREATE TRIGGER jobs_done_counts_worker
AFTER UPDATE OF state ON jobs
WHEN NEW.state = 'done' AND OLD.state <> 'done' AND NEW.lease_owner IS NOT NULL
BEGIN
    UPDATE workers SET jobs_done = jobs_done + 1, last_seen_ms = NEW.updated_at_ms
    WHERE id = NEW.lease_owner;
END;
