// Request-target normalization for access rules (RFC 3986 §6.2.2 and §5.2.4), with WHATWG's URL parser (Node's
// `URL`) as an independent oracle for dot-segment removal.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normalizePath, normalizeTarget } from '../../../protocols/http/index.js';

describe('normalizeTarget', () => {
  it.each([
    // Nothing to do: the very same string.
    ['/a/b?x=1', '/a/b', '/a/b?x=1'],
    ['/', '/', '/'],
    // Unreserved characters decoded, other escapes kept with upper-case hex.
    ['/%7Euser/%41%2d%5f%2E', '/~user/A-_.', '/~user/A-_.'],
    ['/a%3fb/%c3%a9', '/a%3Fb/%C3%A9', '/a%3Fb/%C3%A9'],
    // Dot segments removed (RFC 3986 §5.2.4), also when they were encoded.
    ['/a/./b/../c', '/a/c', '/a/c'],
    ['/a/b/c/./../../g', '/a/g', '/a/g'],
    ['/a/b/.', '/a/b/', '/a/b/'],
    ['/a/b/..', '/a/', '/a/'],
    ['/a/%2e%2E/b', '/b', '/b'],
    ['/a/.%2e/b?q', '/b', '/b?q'],
    ['//a/../b', '//b', '//b'],
    ['/a/.../b', '/a/.../b', '/a/.../b'],
    ['/a;v=1/b', '/a;v=1/b', '/a;v=1/b'],
    // The query is not the path: kept exactly as it came.
    ['/a/./b?../%2e/c', '/a/b', '/a/b?../%2e/c'],
    // Absolute form: matched on its path, forwarded in its own form.
    ['http://h:80/a/../b?x', '/b', 'http://h:80/b?x'],
    ['HTTP://h', '/', 'HTTP://h/'],
    ['https://h?q', '/', 'https://h/?q'],
    ['http://[::1]/%7e', '/~', 'http://[::1]/~'],
    // No path at all.
    ['*', null, '*'],
    ['db:5432', null, 'db:5432'],
  ])('%s → path %s, forwarded as %s', (target, path, forwarded) => {
    expect(normalizeTarget(target)).toEqual({ ok: true, path, target: forwarded });
  });

  it.each([
    ['/..', 'its dot segments climb above /'],
    ['/a/../..', 'its dot segments climb above /'],
    ['/a/%2e%2e/%2E%2E/x', 'its dot segments climb above /'],
    ['http://h/../x', 'its dot segments climb above /'],
    ['/a/..%2Fadmin', "an encoded '/' in the path"],
    ['/a%2fb', "an encoded '/' in the path"],
    ['/a/%5C..', "an encoded '\\' in the path"],
    ['/a/..;/b', "a dot segment with parameters ('..;')"],
    ['/a/.;x/b', "a dot segment with parameters ('.;x')"],
    ['/a/%2e%2e;x', "a dot segment with parameters ('..;x')"],
  ])('refuses %s: %s', (target, reason) => {
    expect(normalizeTarget(target)).toEqual({ ok: false, reason });
  });

  it('refuses an incomplete escape in a path given to normalizePath', () => {
    expect(normalizePath('/a%4')).toEqual({ ok: false, reason: "a '%' not followed by two hex digits" });
    expect(normalizePath('/a%zz')).toEqual({ ok: false, reason: "a '%' not followed by two hex digits" });
  });

  it('removes dot segments as WHATWG URL does wherever the path stays below /', () => {
    const segment = fc.constantFrom('a', 'bc', '.', '..', '', '%2e', '%2E%2e', '...', 'x.y');
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 8 }), (segments) => {
        const path = `/${segments.join('/')}`;
        const ours = normalizeTarget(path);
        const whatwg = new URL(`http://h${path}`).pathname;
        if (ours.ok) {
          expect(ours.path).toBe(whatwg);
        } else {
          // WHATWG stops at the root where we refuse: then its result has lost a `..`.
          expect(ours.reason).toBe('its dot segments climb above /');
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('is idempotent: a normalized target normalizes to itself', () => {
    const segment = fc.constantFrom('a', '.', '..', '', '%2e', '%7E', '%3f', 'b;c');
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 8 }), (segments) => {
        const once = normalizeTarget(`/${segments.join('/')}?%2e`);
        if (!once.ok) return;
        expect(normalizeTarget(once.target)).toEqual(once);
      }),
      { numRuns: 2000 },
    );
  });
});
