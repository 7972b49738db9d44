-- modsync store, version 3: the pack key of every job, so that a worker training a pack of K
-- networks can lease K compatible jobs at once.
-- Never edit this file after it has landed: add 0004_*.sql instead (sqlx checks checksums).
--
-- The key is trainer-core's `PackKey::encode` of the job's config: the networks of one pack
-- share PDE, width, depth, precision and collocation lattice (`pde:wW:dD:precision:ncN`). The
-- coordinator writes it at submit; the UPDATE below computes the same string for jobs stored
-- before this migration (coordinator test `migration_pack_key_equals_trainer_core`).
ALTER TABLE jobs ADD COLUMN pack_key TEXT NOT NULL DEFAULT '';

UPDATE jobs SET pack_key =
    json_extract(config_json, '$.pde')
    || ':w' || json_extract(config_json, '$.width')
    || ':d' || json_extract(config_json, '$.depth')
    || ':' || json_extract(config_json, '$.precision')
    || ':nc' || json_extract(config_json, '$.pde_options.nc');

-- A pack lease: the highest-priority, oldest queued jobs of one key.
CREATE INDEX jobs_pack_queue ON jobs (state, pack_key, priority DESC, id);
