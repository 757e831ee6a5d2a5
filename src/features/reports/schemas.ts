import { Type } from 'typebox'

export const ErrorBody = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String() })
})

export const OrgParams = Type.Object({
  orgId: Type.String({ format: 'uuid', description: 'Organization id' })
})

export const ComplianceQuery = Type.Object({
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Window start, inclusive (default: to − 24 h)' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Window end, exclusive (default: now)' }))
}, { additionalProperties: false })

export const UnitCompliance = Type.Object({
  unitId: Type.String({ format: 'uuid' }),
  unitName: Type.String(),
  readings: Type.Integer({ description: 'Readings recorded in the window' }),
  inRange: Type.Integer({ description: 'Readings inside [tempMin, tempMax], bounds included' }),
  percentage: Type.Number({ description: 'inRange / readings in percent, one decimal; 100 without readings' }),
  excursions: Type.Integer({ description: 'temperature_excursion alerts triggered in the window' })
})

export const ComplianceReport = Type.Object({
  organizationId: Type.String({ format: 'uuid' }),
  from: Type.String({ format: 'date-time' }),
  to: Type.String({ format: 'date-time' }),
  units: Type.Array(UnitCompliance, { description: 'Every active unit of the organization, by name' })
})
