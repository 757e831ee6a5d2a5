import { sql, type SQL } from 'drizzle-orm'

// The statements coldboard ran before rollups (main before issue 14), kept here as the benchmark's raw-scan
// baseline: every reading of the window is read and judged against the unit's current thresholds (the same
// judgement as the rollups' on data whose thresholds never changed, such as the seeded organizations).

/** Dashboard compliance over (from, to]: the org's active units' readings. */
export const rawComplianceSql = (orgId: string, from: string, to: string): SQL => sql`
  select case when cc.readings = 0 then 100 else round(100.0 * cc.in_range / cc.readings, 1) end::float8 as compliance
  from (
    select count(*)::int as readings,
      count(*) filter (where r.temperature between u.temp_min and u.temp_max)::int as in_range
    from sensor_readings r
    join units u on u.id = r.unit_id
    where r.organization_id = ${orgId}
      and r.recorded_at > ${from}::timestamptz and r.recorded_at <= ${to}::timestamptz
      and u.organization_id = ${orgId} and u.is_active
  ) cc`

/** One unit's 5-minute trend over (from, to]. */
export const rawTrendSql = (orgId: string, unitId: string, from: string, to: string): SQL => sql`
  select u.id as unit_id, b.bucket_ms, b.temperature, b.too_hot, b.too_cold
  from units u
  left join lateral (
    select (extract(epoch from date_bin('5 minutes', r.recorded_at, timestamptz 'epoch')) * 1000)::float8 as bucket_ms,
      round(avg(r.temperature), 2)::float8 as temperature,
      bool_or(r.temperature > u.temp_max) as too_hot,
      bool_or(r.temperature < u.temp_min) as too_cold
    from sensor_readings r
    where r.unit_id = u.id
      and r.recorded_at > ${from}::timestamptz and r.recorded_at <= ${to}::timestamptz
    group by 1
  ) b on true
  where u.id = ${unitId} and u.organization_id = ${orgId}
  order by b.bucket_ms`

/** The compliance report over [from, to), per active unit (its plan problem included: the 68.6 s). */
export const rawReportSql = (orgId: string, from: string, to: string): SQL => sql`
  with r as (
    select r.unit_id, count(*)::int as readings,
      count(*) filter (where r.temperature between u.temp_min and u.temp_max)::int as in_range
    from sensor_readings r
    join units u on u.id = r.unit_id
    where r.organization_id = ${orgId}
      and r.recorded_at >= ${from}::timestamptz and r.recorded_at < ${to}::timestamptz
      and u.organization_id = ${orgId} and u.is_active
    group by r.unit_id
  ), x as (
    select unit_id, count(*)::int as excursions
    from alerts
    where organization_id = ${orgId} and type = 'temperature_excursion'
      and triggered_at >= ${from}::timestamptz and triggered_at < ${to}::timestamptz
    group by unit_id
  )
  select u.id as unit_id, u.name as unit_name,
    coalesce(r.readings, 0) as readings,
    coalesce(r.in_range, 0) as in_range,
    case when coalesce(r.readings, 0) = 0 then 100 else round(100.0 * r.in_range / r.readings, 1) end::float8 as percentage,
    coalesce(x.excursions, 0) as excursions
  from organizations o
  left join units u on u.organization_id = o.id and u.is_active
  left join r on r.unit_id = u.id
  left join x on x.unit_id = u.id
  where o.id = ${orgId}
  order by u.name, u.id`
