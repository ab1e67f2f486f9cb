import { trimWhitespace } from './chars.js';
import type { HttpHeader } from './types.js';

const CONNECTION = 'connection';

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
  const { keys, lengths } = strippedKeys(names);
  const kept: HttpHeader[] = [];
  for (const header of headers) {
    // A key has the length of its name (a token): only names of a stripped key's length need one.
    if (!lengths.has(header.name.length)) {
      kept.push(header);
      continue;
    }
    const key = fieldNameKey(header.name);
    if (keys.has(key)) continue;
    if (key !== CONNECTION) {
      kept.push(header);
      continue;
    }
    const options = header.value
      .split(',')
      .map(trimWhitespace)
      .filter((option) => option.length > 0 && !keys.has(fieldNameKey(option)));
    if (options.length > 0) kept.push({ name: header.name, value: options.join(', ') });
  }
  return kept;
}

interface StrippedKeys {
  names: readonly string[];
  keys: Set<string>;
  /** The lengths of the keys and of Connection's. */
  lengths: Set<number>;
}

/** Those of the last names list: a mediator strips the same names from every message. */
let lastStripped: StrippedKeys = { names: [], keys: new Set(), lengths: new Set([CONNECTION.length]) };

function strippedKeys(names: readonly string[]): StrippedKeys {
  const last = lastStripped;
  if (names.length === last.names.length && names.every((name, i) => name === last.names[i])) return last;
  const keys = new Set(names.map(fieldNameKey));
  lastStripped = {
    names: [...names],
    keys,
    lengths: new Set([CONNECTION.length, ...[...keys].map((key) => key.length)]),
  };
  return lastStripped;
}
