import type { Device, Organization, Site, Unit } from '../../db/schema.js'
import type { DeviceJson, OrganizationJson, SiteJson, UnitJson } from './schemas.js'

// Rows to API JSON: the same camelCase fields, dates as ISO strings.

const iso = (d: Date | null): string | null => d === null ? null : d.toISOString()

export function organizationJson (o: Organization): OrganizationJson {
  return { id: o.id, name: o.name, slug: o.slug, createdAt: o.createdAt.toISOString() }
}

export function siteJson (s: Site): SiteJson {
  return { id: s.id, organizationId: s.organizationId, name: s.name, isActive: s.isActive, createdAt: s.createdAt.toISOString() }
}

export function unitJson (u: Unit): UnitJson {
  return {
    id: u.id,
    organizationId: u.organizationId,
    siteId: u.siteId,
    name: u.name,
    unitType: u.unitType,
    tempMin: u.tempMin,
    tempMax: u.tempMax,
    state: u.state,
    lastTemperature: u.lastTemperature,
    lastReadingAt: iso(u.lastReadingAt),
    stateChangedAt: u.stateChangedAt.toISOString(),
    isActive: u.isActive,
    createdAt: u.createdAt.toISOString()
  }
}

export function deviceJson (d: Device): DeviceJson {
  return {
    id: d.id,
    organizationId: d.organizationId,
    unitId: d.unitId,
    deviceEui: d.deviceEui,
    status: d.status,
    lastSeenAt: iso(d.lastSeenAt),
    battery: d.battery,
    createdAt: d.createdAt.toISOString()
  }
}
