-- Threshold history, rollups maintained in the inserting statement, sensor_readings partitioned by month.
-- Hand-written: drizzle-kit cannot express triggers, PARTITION BY or INCLUDE. docs/database.md explains the design.

-- 1. Threshold history: a reading is judged against the thresholds its unit had when it was recorded.
CREATE TABLE "unit_thresholds" (
	"unit_id" uuid NOT NULL REFERENCES "units"("id") ON DELETE CASCADE,
	"organization_id" uuid NOT NULL,
	"valid_from" timestamp with time zone NOT NULL,
	"temp_min" numeric(6, 2) NOT NULL,
	"temp_max" numeric(6, 2) NOT NULL,
	CONSTRAINT "unit_thresholds_pkey" PRIMARY KEY ("unit_id", "valid_from")
);
--> statement-breakpoint
-- The raw edges of an organization's window join its threshold periods.
CREATE INDEX "unit_thresholds_org_idx" ON "unit_thresholds" ("organization_id");
--> statement-breakpoint
-- Existing units: their current thresholds, since forever (the only history there is).
INSERT INTO "unit_thresholds" ("unit_id", "organization_id", "valid_from", "temp_min", "temp_max")
SELECT "id", "organization_id", '-infinity', "temp_min", "temp_max" FROM "units";
--> statement-breakpoint
-- Every writer of units (management, seeding, fixtures) gets the first row without having to remember it.
CREATE FUNCTION "units_initial_thresholds"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO unit_thresholds (unit_id, organization_id, valid_from, temp_min, temp_max)
  SELECT id, organization_id, '-infinity', temp_min, temp_max FROM new_units;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "units_initial_thresholds" AFTER INSERT ON "units"
  REFERENCING NEW TABLE AS new_units FOR EACH STATEMENT EXECUTE FUNCTION "units_initial_thresholds"();
--> statement-breakpoint

-- 2. Rollups per unit and bucket (5 minutes, 1 hour, 1 day; UTC, aligned on the epoch). Free space on each page keeps
--    the counter updates HOT (no index entry per update): a 5-minute row is updated a few times within minutes of
--    its insert, so half of its page is left free; hourly and daily rows are spread over longer.
CREATE TABLE "reading_rollups_5m" (
	"unit_id" uuid NOT NULL,
	"bucket" timestamp with time zone NOT NULL,
	"organization_id" uuid NOT NULL,
	"readings" integer NOT NULL,
	"above" integer NOT NULL,
	"below" integer NOT NULL,
	"temp_sum" numeric NOT NULL,
	"temp_min" numeric(6, 2) NOT NULL,
	"temp_max" numeric(6, 2) NOT NULL,
	CONSTRAINT "reading_rollups_5m_pkey" PRIMARY KEY ("unit_id", "bucket")
) WITH (fillfactor = 50);
--> statement-breakpoint
CREATE TABLE "reading_rollups_1h" (
	"unit_id" uuid NOT NULL,
	"bucket" timestamp with time zone NOT NULL,
	"organization_id" uuid NOT NULL,
	"readings" integer NOT NULL,
	"above" integer NOT NULL,
	"below" integer NOT NULL,
	"temp_sum" numeric NOT NULL,
	"temp_min" numeric(6, 2) NOT NULL,
	"temp_max" numeric(6, 2) NOT NULL,
	CONSTRAINT "reading_rollups_1h_pkey" PRIMARY KEY ("unit_id", "bucket")
) WITH (fillfactor = 80);
--> statement-breakpoint
CREATE TABLE "reading_rollups_1d" (
	"unit_id" uuid NOT NULL,
	"bucket" timestamp with time zone NOT NULL,
	"organization_id" uuid NOT NULL,
	"readings" integer NOT NULL,
	"above" integer NOT NULL,
	"below" integer NOT NULL,
	"temp_sum" numeric NOT NULL,
	"temp_min" numeric(6, 2) NOT NULL,
	"temp_max" numeric(6, 2) NOT NULL,
	CONSTRAINT "reading_rollups_1d_pkey" PRIMARY KEY ("unit_id", "bucket")
) WITH (fillfactor = 80);
--> statement-breakpoint
CREATE INDEX "reading_rollups_5m_org_bucket_idx" ON "reading_rollups_5m" ("organization_id", "bucket");
--> statement-breakpoint
CREATE INDEX "reading_rollups_1h_org_bucket_idx" ON "reading_rollups_1h" ("organization_id", "bucket");
--> statement-breakpoint
CREATE INDEX "reading_rollups_1d_org_bucket_idx" ON "reading_rollups_1d" ("organization_id", "bucket");
--> statement-breakpoint
CREATE TABLE "retention_horizons" (
	"kind" text PRIMARY KEY NOT NULL,
	"horizon" timestamp with time zone NOT NULL
);
--> statement-breakpoint

-- 3. sensor_readings partitioned by month. An empty table is simply replaced; a populated one becomes the
--    partition sensor_readings_legacy, covering everything before the first month boundary after its newest
--    reading (and after now), without rewriting a row: its indexes are adopted by the parent's.
DO $$
DECLARE
  populated boolean;
  legacy_to timestamptz;
  next_id bigint;
BEGIN
  SELECT EXISTS (SELECT 1 FROM sensor_readings) INTO populated;
  IF populated THEN
    SELECT date_trunc('month', greatest(max(recorded_at), now()), 'UTC') + interval '1 month', max(id) + 1
      INTO legacy_to, next_id FROM sensor_readings;
    ALTER TABLE sensor_readings RENAME TO sensor_readings_legacy;
    ALTER TABLE sensor_readings_legacy ALTER COLUMN id DROP IDENTITY;
    ALTER TABLE sensor_readings_legacy DROP CONSTRAINT sensor_readings_pkey;
    ALTER INDEX sensor_readings_device_recorded_uq RENAME TO sensor_readings_legacy_device_recorded_uq;
    ALTER INDEX sensor_readings_unit_recorded_cov RENAME TO sensor_readings_legacy_unit_recorded_cov;
    ALTER INDEX sensor_readings_org_recorded_cov RENAME TO sensor_readings_legacy_org_recorded_cov;
  ELSE
    DROP TABLE sensor_readings;
  END IF;

  CREATE TABLE sensor_readings (
    id bigint GENERATED ALWAYS AS IDENTITY,
    organization_id uuid NOT NULL,
    unit_id uuid NOT NULL,
    device_id uuid NOT NULL,
    temperature numeric(6, 2) NOT NULL,
    humidity numeric(5, 2),
    recorded_at timestamptz NOT NULL,
    received_at timestamptz DEFAULT now() NOT NULL,
    CONSTRAINT sensor_readings_pkey PRIMARY KEY (id, recorded_at)
  ) PARTITION BY RANGE (recorded_at);
  CREATE UNIQUE INDEX sensor_readings_device_recorded_uq ON sensor_readings (device_id, recorded_at);
  CREATE INDEX sensor_readings_unit_recorded_cov ON sensor_readings (unit_id, recorded_at) INCLUDE (temperature);
  CREATE INDEX sensor_readings_org_recorded_cov ON sensor_readings (organization_id, recorded_at) INCLUDE (unit_id, temperature);
  -- The safety net: a reading for a month without a partition is never rejected (maintenance moves it out).
  CREATE TABLE sensor_readings_default PARTITION OF sensor_readings DEFAULT;

  IF populated THEN
    EXECUTE format('ALTER TABLE sensor_readings ALTER COLUMN id RESTART WITH %s', next_id);
    -- Validates the bound with one scan and attaches the legacy indexes that match; builds the (id, recorded_at) one.
    EXECUTE format('ALTER TABLE sensor_readings ATTACH PARTITION sensor_readings_legacy FOR VALUES FROM (MINVALUE) TO (%L)', legacy_to);
  END IF;
  -- This month and the next (after the legacy partition, if any); maintenance keeps creating them ahead.
  FOR i IN 0..1 LOOP
    DECLARE
      m timestamptz := greatest(date_trunc('month', now(), 'UTC'), coalesce(legacy_to, '-infinity')) + make_interval(months => i);
    BEGIN
      EXECUTE format('CREATE TABLE %I PARTITION OF sensor_readings FOR VALUES FROM (%L) TO (%L)',
        'sensor_readings_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM'), m, m + interval '1 month');
    END;
  END LOOP;
END $$;
--> statement-breakpoint

-- 4. Rollups of the readings already stored, judged against the only thresholds known for them.
WITH b AS MATERIALIZED (
  SELECT r.organization_id, r.unit_id, date_bin('5 minutes', r.recorded_at, timestamptz '1970-01-01 00:00:00+00') AS bucket,
    count(*)::int AS readings,
    count(*) FILTER (WHERE r.temperature > t.temp_max)::int AS above,
    count(*) FILTER (WHERE r.temperature < t.temp_min)::int AS below,
    sum(r.temperature) AS temp_sum, min(r.temperature) AS temp_min, max(r.temperature) AS temp_max
  FROM sensor_readings r
  LEFT JOIN unit_thresholds t ON t.unit_id = r.unit_id
  GROUP BY 1, 2, 3
), f AS (
  INSERT INTO reading_rollups_5m SELECT unit_id, bucket, organization_id, readings, above, below, temp_sum, temp_min, temp_max FROM b
  RETURNING 1
), h AS (
  INSERT INTO reading_rollups_1h
  SELECT unit_id, date_bin('1 hour', bucket, timestamptz '1970-01-01 00:00:00+00'), organization_id,
    sum(readings), sum(above), sum(below), sum(temp_sum), min(temp_min), max(temp_max)
  FROM b GROUP BY 1, 2, 3
  RETURNING 1
)
INSERT INTO reading_rollups_1d
SELECT unit_id, date_bin('1 day', bucket, timestamptz '1970-01-01 00:00:00+00'), organization_id,
  sum(readings), sum(above), sum(below), sum(temp_sum), min(temp_min), max(temp_max)
FROM b GROUP BY 1, 2, 3;
--> statement-breakpoint

-- 5. The rollups of every statement that inserts readings, in that statement: the transition table holds only the
--    rows actually inserted (ON CONFLICT DO NOTHING leaves duplicates out). The shared advisory lock per
--    organization waits for a threshold change or rebuild of that organization in progress (they take it
--    exclusively), and this function's statements see what it committed. Upserts in (unit_id, bucket) order, one
--    table after the other, so that concurrent batches never deadlock; DO UPDATE adds, so none is lost.
CREATE FUNCTION "sensor_readings_rollup"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  org uuid;
BEGIN
  FOR org IN SELECT DISTINCT organization_id FROM new_readings ORDER BY 1 LOOP
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('coldboard:rollups:' || org::text, 0));
  END LOOP;
  WITH b AS MATERIALIZED (
    SELECT n.organization_id, n.unit_id, date_bin('5 minutes', n.recorded_at, timestamptz '1970-01-01 00:00:00+00') AS bucket,
      count(*)::int AS readings,
      count(*) FILTER (WHERE n.temperature > t.temp_max)::int AS above,
      count(*) FILTER (WHERE n.temperature < t.temp_min)::int AS below,
      sum(n.temperature) AS temp_sum, min(n.temperature) AS temp_min, max(n.temperature) AS temp_max
    FROM new_readings n
    LEFT JOIN LATERAL (
      SELECT h.temp_min, h.temp_max FROM unit_thresholds h
      WHERE h.unit_id = n.unit_id AND h.valid_from <= n.recorded_at
      ORDER BY h.valid_from DESC LIMIT 1
    ) t ON true
    GROUP BY 1, 2, 3
  ), f AS (
    INSERT INTO reading_rollups_5m AS r
    SELECT unit_id, bucket, organization_id, readings, above, below, temp_sum, temp_min, temp_max FROM b
    ORDER BY unit_id, bucket
    ON CONFLICT (unit_id, bucket) DO UPDATE SET readings = r.readings + excluded.readings,
      above = r.above + excluded.above, below = r.below + excluded.below, temp_sum = r.temp_sum + excluded.temp_sum,
      temp_min = least(r.temp_min, excluded.temp_min), temp_max = greatest(r.temp_max, excluded.temp_max)
    RETURNING 1
  ), h AS (
    INSERT INTO reading_rollups_1h AS r
    SELECT unit_id, date_bin('1 hour', bucket, timestamptz '1970-01-01 00:00:00+00') AS hour, organization_id,
      sum(readings), sum(above), sum(below), sum(temp_sum), min(temp_min), max(temp_max)
    FROM b GROUP BY 1, 2, 3 ORDER BY 1, 2
    ON CONFLICT (unit_id, bucket) DO UPDATE SET readings = r.readings + excluded.readings,
      above = r.above + excluded.above, below = r.below + excluded.below, temp_sum = r.temp_sum + excluded.temp_sum,
      temp_min = least(r.temp_min, excluded.temp_min), temp_max = greatest(r.temp_max, excluded.temp_max)
    RETURNING 1
  )
  INSERT INTO reading_rollups_1d AS r
  SELECT unit_id, date_bin('1 day', bucket, timestamptz '1970-01-01 00:00:00+00') AS day, organization_id,
    sum(readings), sum(above), sum(below), sum(temp_sum), min(temp_min), max(temp_max)
  FROM b GROUP BY 1, 2, 3 ORDER BY 1, 2
  ON CONFLICT (unit_id, bucket) DO UPDATE SET readings = r.readings + excluded.readings,
    above = r.above + excluded.above, below = r.below + excluded.below, temp_sum = r.temp_sum + excluded.temp_sum,
    temp_min = least(r.temp_min, excluded.temp_min), temp_max = greatest(r.temp_max, excluded.temp_max);
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "sensor_readings_rollups" AFTER INSERT ON "sensor_readings"
  REFERENCING NEW TABLE AS new_readings FOR EACH STATEMENT EXECUTE FUNCTION "sensor_readings_rollup"();
