import { sql } from 'drizzle-orm'
import { rows, type Db } from '../../src/infra/postgres.js'
export { adminQuery, databaseUrlOf as databaseUrl } from '../../src/lib/pg-admin.js'

/**
 * One organization, server-side (INSERT … SELECT … generate_series): 10 sites, `units` units (a fifth freezers,
 * a few not normal), one online device each, an open alert per unit not normal, and `minutes` of 1-minute
 * readings per unit ending at `end`, interleaved across units as ingestion writes them.
 */
export async function seedOrganization (db: Db, opts: { units: number, minutes: number, end: Date }): Promise<string> {
  const end = opts.end.toISOString()
  const [org] = await rows<{ id: string }>(db, sql`insert into organizations (name, slug) values ('Bench org', 'bench-hit-org') returning id`)
  const orgId = org!.id
  await db.execute(sql`insert into sites (organization_id, name) select ${orgId}, 'Site ' || s from generate_series(1, 10) s`)
  await db.execute(sql`
    with s as (select id, row_number() over (order by name) - 1 as rn from sites where organization_id = ${orgId})
    insert into units (organization_id, site_id, name, unit_type, temp_min, temp_max, state, last_reading_at, last_temperature)
    select ${orgId}, s.id, 'Unit ' || lpad(i::text, 5, '0'),
      (case when i % 5 = 0 then 'freezer' else 'fridge' end)::unit_type,
      case when i % 5 = 0 then -25 else 2 end, case when i % 5 = 0 then -15 else 8 end,
      (case when i % 100 = 1 then 'offline' when i % 50 = 2 then 'too_hot' when i % 50 = 3 then 'too_cold' else 'normal' end)::unit_state,
      ${end}::timestamptz, 5
    from generate_series(1, ${opts.units}) i join s on s.rn = i % 10`)
  await db.execute(sql`
    insert into devices (organization_id, unit_id, device_eui, status, last_seen_at, battery)
    select organization_id, id, 'bench-' || id, (case when state = 'offline' then 'offline' else 'online' end)::device_status, ${end}::timestamptz, 90
    from units where organization_id = ${orgId}`)
  await db.execute(sql`
    insert into alerts (organization_id, unit_id, type, severity, status, triggered_at)
    select organization_id, id, (case when state = 'offline' then 'offline' else 'temperature_excursion' end)::alert_type,
      (case when state = 'too_hot' then 'critical' else 'warning' end)::alert_severity, 'active', ${end}::timestamptz - interval '20 minutes'
    from units where organization_id = ${orgId} and state <> 'normal'`)
  await db.execute(sql`
    insert into sensor_readings (organization_id, unit_id, device_id, temperature, recorded_at, received_at)
    select u.organization_id, u.id, d.id,
      round(((u.temp_min + u.temp_max) / 2 + (u.temp_max - u.temp_min) / 2 * 0.9 * sin(m / 90.0 + u.phase) + (random() - 0.5) * 1.5)::numeric, 2),
      ${end}::timestamptz - make_interval(mins => ${opts.minutes} - m),
      ${end}::timestamptz - make_interval(mins => ${opts.minutes} - m) + interval '2 seconds'
    from generate_series(1, ${opts.minutes}) m
    cross join (select id, organization_id, temp_min, temp_max, (abs(hashtext(id::text)) % 628) / 100.0 as phase
      from units where organization_id = ${orgId}) u
    join devices d on d.unit_id = u.id
    order by m, u.id`)
  return orgId
}
