-- Version 5 makes audit_events and consent_events append-only on SQLite.
-- On Postgres they have been since they were created (0001, 0002: only
-- SELECT and INSERT granted to blackbox_app, triggers that refuse UPDATE,
-- DELETE and TRUNCATE to everyone), so this step only keeps both backends'
-- schema versions meaning the same thing.
SELECT 1;
