// The path of a request-target as an access rule must see it: normalized as RFC 3986 §6.2.2 allows for http URIs
// (percent-encodings of unreserved characters decoded, the others' hex digits upper-cased, dot segments removed as
// §5.2.4 does), so that two spellings of one resource are one path. Pure: strings in, strings out.
//
// What normalization cannot make unambiguous is refused rather than guessed:
// - dot segments that climb above "/" (RFC 3986 drops the excess `..`; a back end that does not would serve
//   another resource than the one checked);
// - an encoded "/" or "\" (`%2F`, `%5C`): servers disagree on whether it separates segments, so `/api/..%2Fadmin`
//   is inside `/api/` for some and `/admin` for others;
// - a segment that is `.` or `..` with `;` parameters (`..;x`): servlet containers drop the parameters and then
//   take it as a dot segment.

import { HEX_VALUE } from './chars.js';

/** A request-target with its path normalized, or why it cannot be. */
export type NormalizedTarget =
  | {
      ok: true;
      /** The normalized path (no query); null for the asterisk-form (`*`) and the authority-form (CONNECT). */
      path: string | null;
      /** The target in its own form with the normalized path in place; the query is kept as it came. */
      target: string;
    }
  | { ok: false; reason: string };

const ABSOLUTE_PREFIX = /^https?:\/\/[^/?]*/i;

/** Normalizes a request-target as the request parser accepted it (origin, absolute, authority or asterisk form). */
export function normalizeTarget(target: string): NormalizedTarget {
  let prefix = '';
  let rest = target;
  if (!target.startsWith('/')) {
    const absolute = ABSOLUTE_PREFIX.exec(target);
    // `*` (OPTIONS) and `host:port` (CONNECT) have no path.
    if (absolute === null) return { ok: true, path: null, target };
    prefix = absolute[0];
    rest = target.slice(prefix.length);
  }
  const queryAt = rest.indexOf('?');
  const rawPath = queryAt === -1 ? rest : rest.slice(0, queryAt);
  const query = queryAt === -1 ? '' : rest.slice(queryAt);
  const path = normalizePath(rawPath === '' ? '/' : rawPath);
  if (typeof path !== 'string') return path;
  return {
    ok: true,
    path,
    target: path === rawPath ? target : `${prefix}${path}${query}`,
  };
}

/**
 * Normalizes an absolute path (`/` first, URI characters, every `%` a complete triplet). Returns the path, or why it
 * is refused.
 */
export function normalizePath(path: string): string | { ok: false; reason: string } {
  // Most paths have neither escapes nor dot segments: nothing to do.
  if (!path.includes('%') && !path.includes('/.')) return path;
  const decoded = path.includes('%') ? decodeUnreserved(path) : path;
  if (typeof decoded !== 'string') return decoded;
  return decoded.includes('/.') ? removeDotSegments(decoded) : decoded;
}

/** RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(byte: number): boolean {
  return (
    (byte >= 0x30 && byte <= 0x39) ||
    (byte >= 0x41 && byte <= 0x5a) ||
    (byte >= 0x61 && byte <= 0x7a) ||
    byte === 0x2d ||
    byte === 0x2e ||
    byte === 0x5f ||
    byte === 0x7e
  );
}

function decodeUnreserved(path: string): string | { ok: false; reason: string } {
  let out = '';
  let from = 0;
  for (let at = path.indexOf('%'); at !== -1; at = path.indexOf('%', at + 1)) {
    // charCodeAt past the end is NaN: no hex value.
    const high = HEX_VALUE[path.charCodeAt(at + 1)] ?? -1;
    const low = HEX_VALUE[path.charCodeAt(at + 2)] ?? -1;
    if (high < 0 || low < 0) {
      return { ok: false, reason: "a '%' not followed by two hex digits" };
    }
    const byte = high * 16 + low;
    if (byte === 0x2f || byte === 0x5c) {
      return { ok: false, reason: `an encoded '${byte === 0x2f ? '/' : '\\'}' in the path` };
    }
    out += path.slice(from, at);
    out += isUnreserved(byte) ? String.fromCharCode(byte) : path.slice(at, at + 3).toUpperCase();
    from = at + 3;
    at += 2;
  }
  return out + path.slice(from);
}

/** RFC 3986 §5.2.4 on an absolute path, except that a `..` with nothing left to remove is refused. */
function removeDotSegments(path: string): string | { ok: false; reason: string } {
  const segments = path.split('/');
  const out: string[] = [];
  let endsInDirectory = false;
  // segments[0] is the empty string before the leading "/".
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i] as string;
    endsInDirectory = segment === '.' || segment === '..';
    if (segment === '.') continue;
    if (segment === '..') {
      if (out.length === 0) return { ok: false, reason: 'its dot segments climb above /' };
      out.pop();
      continue;
    }
    const semicolon = segment.indexOf(';');
    const bare = semicolon === -1 ? segment : segment.slice(0, semicolon);
    if (bare === '.' || bare === '..') {
      return { ok: false, reason: `a dot segment with parameters ('${segment}')` };
    }
    out.push(segment);
  }
  if (endsInDirectory) out.push('');
  return `/${out.join('/')}`;
}
