-- Compliance reads every reading of an organization in a time window: a covering index lets it run as an
-- index-only scan without touching the heap. drizzle-kit cannot express INCLUDE, hence a custom migration.
CREATE INDEX IF NOT EXISTS "sensor_readings_org_recorded_cov" ON "sensor_readings" ("organization_id", "recorded_at") INCLUDE ("unit_id", "temperature");
