import type { ComplianceReport } from './service.js'

const HEADER = ['unit_id', 'unit_name', 'date', 'readings', 'in_range', 'percentage', 'min_temperature', 'max_temperature', 'excursions']

/**
 * One field of RFC 4180 CSV. Text that a spreadsheet would run as a formula (=, +, -, @, tab, CR first) is
 * prefixed with an apostrophe; numbers are written as they are.
 */
function field (value: string | number | null): string {
  if (value === null) return ''
  if (typeof value === 'number') return String(value)
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe
}

/**
 * The report as a spreadsheet-ready CSV: a byte-order mark (so that spreadsheets read UTF-8 names), a header, then
 * one row per unit and UTC day, the rows of the JSON's units[].days with the unit's id and name; CRLF line ends.
 */
export function complianceCsv (report: ComplianceReport): string {
  const lines = [HEADER.join(',')]
  for (const u of report.units) {
    for (const d of u.days) {
      lines.push([u.unitId, u.unitName, d.date, d.readings, d.inRange, d.percentage, d.min, d.max, d.excursions].map(field).join(','))
    }
  }
  return '\ufeff' + lines.join('\r\n') + '\r\n'
}
