-- 0005: what the cleaner reads, mirroring
-- store/postgres/migrations/0005_retention.sql. MySQL has no partial or (on
-- MariaDB) expression indexes: results to expire get a plain index, and the
-- retention delete reads finished jobs through the indexes that start with
-- status.
CREATE INDEX hammerwork_jobs_result_expiry_idx ON hammerwork_jobs (result_expires_at);
