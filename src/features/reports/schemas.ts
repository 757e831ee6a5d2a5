import { Type } from 'typebox'

export const ErrorBody = Type.Object({
  error: Type.Object({ code: Type.String(), message: Type.String() })
})

export const OrgParams = Type.Object({
  orgId: Type.String({ format: 'uuid', description: 'Organization id' })
})

export const ComplianceQuery = Type.Object({
  from: Type.Optional(Type.String({ format: 'date-time', description: 'Window start, inclusive (default: to − 24 h)' })),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'Window end, exclusive (default: now)' })),
  format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('csv')], {
    description: 'json (default) or csv: one row per unit and UTC day, the rows of units[].days'
  }))
}, { additionalProperties: false })

const Temperature = Type.Union([Type.Number(), Type.Null()])

export const DayCompliance = Type.Object({
  date: Type.String({ format: 'date', description: 'UTC day; the window\'s first and last days count only their part inside it' }),
  readings: Type.Integer(),
  inRange: Type.Integer(),
  percentage: Type.Number({ description: 'One decimal; 100 without readings' }),
  min: { ...Temperature, description: 'Lowest temperature recorded that day (°C); null without readings' },
  max: { ...Temperature, description: 'Highest temperature recorded that day (°C); null without readings' },
  excursions: Type.Integer()
})

export const UnitCompliance = Type.Object({
  unitId: Type.String({ format: 'uuid' }),
  unitName: Type.String(),
  readings: Type.Integer({ description: 'Readings recorded in the window' }),
  inRange: Type.Integer({ description: 'Readings inside [tempMin, tempMax] of the thresholds in force when each was recorded, bounds included' }),
  percentage: Type.Number({ description: 'inRange / readings in percent, one decimal; 100 without readings' }),
  excursions: Type.Integer({ description: 'temperature_excursion alerts triggered in the window' }),
  min: { ...Temperature, description: 'Lowest temperature recorded in the window (°C); null without readings' },
  max: { ...Temperature, description: 'Highest temperature recorded in the window (°C); null without readings' },
  days: Type.Array(DayCompliance, { description: 'Every UTC day the window touches, oldest first' })
})

export const ComplianceReport = Type.Object({
  organizationId: Type.String({ format: 'uuid' }),
  from: Type.String({ format: 'date-time' }),
  to: Type.String({ format: 'date-time' }),
  units: Type.Array(UnitCompliance, { description: 'Every active unit of the organization, by name' })
})
