import type { HttpHeader } from './types.js';

/** All values of a field, in order, by case-insensitive name. */
export function headerValues(headers: readonly HttpHeader[], name: string): string[] {
  const wanted = name.toLowerCase();
  return headers.filter((header) => header.name.toLowerCase() === wanted).map((header) => header.value);
}

/**
 * A field name as a lenient backend may see it: case-insensitive, and `_` or `.` read as `-` (CGI-style
 * servers turn `X-PV_Client` and `X-PV-Client` into the same variable).
 */
export function fieldNameKey(name: string): string {
  return name.toLowerCase().replace(/[_.]/g, '-');
}

/**
 * The header list without the fields named (look-alikes included, see `fieldNameKey`), and without those names
 * among the Connection options, so no hop can be asked to drop a field added after this one. A Connection
 * field left with no option is removed.
 */
export function stripFields(headers: readonly HttpHeader[], names: readonly string[]): HttpHeader[] {
  const stripped = new Set(names.map(fieldNameKey));
  const kept: HttpHeader[] = [];
  for (const header of headers) {
    const key = fieldNameKey(header.name);
    if (stripped.has(key)) continue;
    if (key !== 'connection') {
      kept.push(header);
      continue;
    }
    const options = header.value
      .split(',')
      .map((option) => option.replace(/^[\t ]+|[\t ]+$/g, ''))
      .filter((option) => option.length > 0 && !stripped.has(fieldNameKey(option)));
    if (options.length > 0) kept.push({ name: header.name, value: options.join(', ') });
  }
  return kept;
}
