import { Type, type Static } from 'typebox'
import { deviceStatusEnum, unitStateEnum, unitTypeEnum } from '../../db/schema.js'
import { DateTime, NullableDateTime, PageQuery, Uuid } from '../../http/schemas.js'

// TypeBox schemas: request validation (src/http/validation.ts) and the OpenAPI document at /docs.
export { ErrorResponse, OrgParams } from '../../http/schemas.js'

// At least one visible character, so that a name never renders as blank on a dashboard.
const Name = Type.String({ minLength: 1, maxLength: 200, pattern: '\\S' })
const Temperature = Type.Number({ minimum: -100, maximum: 100, description: '°C' })
const UnitType = Type.Enum([...unitTypeEnum.enumValues])
const UnitState = Type.Enum([...unitStateEnum.enumValues])
const DeviceStatus = Type.Enum([...deviceStatusEnum.enumValues])

export const UnitParams = Type.Object({ orgId: Uuid, unitId: Uuid }, { additionalProperties: false })

export const Organization = Type.Object({
  id: Uuid,
  name: Type.String(),
  slug: Type.String(),
  createdAt: DateTime
})

export const CreateOrganizationBody = Type.Object({
  name: Name,
  slug: Type.Optional(Type.String({
    minLength: 1,
    maxLength: 63,
    pattern: '^[a-z0-9]+(-[a-z0-9]+)*$',
    description: 'lowercase letters, digits and single dashes; derived from the name when absent'
  }))
}, { additionalProperties: false })

export const Site = Type.Object({
  id: Uuid,
  organizationId: Uuid,
  name: Type.String(),
  isActive: Type.Boolean(),
  createdAt: DateTime
})

export const CreateSiteBody = Type.Object({ name: Name }, { additionalProperties: false })

export const Unit = Type.Object({
  id: Uuid,
  organizationId: Uuid,
  siteId: Uuid,
  name: Type.String(),
  unitType: UnitType,
  tempMin: Type.Number(),
  tempMax: Type.Number(),
  state: UnitState,
  lastTemperature: Type.Union([Type.Number(), Type.Null()]),
  lastReadingAt: NullableDateTime,
  stateChangedAt: DateTime,
  isActive: Type.Boolean(),
  createdAt: DateTime
})

export const CreateUnitBody = Type.Object({
  siteId: Uuid,
  name: Name,
  unitType: UnitType,
  tempMin: Temperature,
  tempMax: Temperature
}, { additionalProperties: false })

export const UpdateUnitBody = Type.Object({
  name: Type.Optional(Name),
  tempMin: Type.Optional(Temperature),
  tempMax: Type.Optional(Temperature),
  isActive: Type.Optional(Type.Boolean())
}, { additionalProperties: false, minProperties: 1 })

// Query strings stay open to unknown parameters (cache busters, tracking) that change nothing.
export const ListUnitsQuery = Type.Object({
  siteId: Type.Optional(Uuid),
  state: Type.Optional(UnitState),
  ...PageQuery
})
export const PageOnlyQuery = Type.Object({ ...PageQuery })

export const Device = Type.Object({
  id: Uuid,
  organizationId: Uuid,
  unitId: Uuid,
  deviceEui: Type.String(),
  status: DeviceStatus,
  lastSeenAt: NullableDateTime,
  battery: Type.Union([Type.Integer(), Type.Null()]),
  createdAt: DateTime
})

export const CreateDeviceBody = Type.Object({
  unitId: Uuid,
  deviceEui: Type.String({
    minLength: 1,
    maxLength: 64,
    pattern: '^[A-Za-z0-9][A-Za-z0-9:._-]*$',
    description: 'globally unique sensor identifier, as the device reports it'
  }),
  battery: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'percent' }))
}, { additionalProperties: false })

export const ListDevicesQuery = Type.Object({ unitId: Type.Optional(Uuid), ...PageQuery })

export type OrganizationJson = Static<typeof Organization>
export type SiteJson = Static<typeof Site>
export type UnitJson = Static<typeof Unit>
export type DeviceJson = Static<typeof Device>
export type CreateUnitInput = Static<typeof CreateUnitBody>
export type UpdateUnitInput = Static<typeof UpdateUnitBody>
export type CreateDeviceInput = Static<typeof CreateDeviceBody>
