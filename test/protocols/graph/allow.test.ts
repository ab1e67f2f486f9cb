import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  matchesAny,
  matchesPattern,
  PatternSet,
  PolicyError,
  parseAllow,
  parsePolicyFile,
} from '../../../protocols/graph/allow.js';

const WHERE = 'graph entry of bus/system-bus';

describe('parseAllow', () => {
  it('lists roles: a string entry grants without narrowing, object entries narrow', () => {
    const policy = parseAllow(
      [
        'operator',
        {
          role: 'viewer',
          interfaces: ['org.pantavisor.Example'],
          members: ['GetInfo', 'Get*'],
          paths: ['/org/pantavisor/*'],
        },
        { role: 'viewer', interfaces: ['org.freedesktop.DBus.Properties'], own: ['org.example.Viewer*'] },
      ],
      'dbus',
      WHERE,
    );
    expect(policy.roles).toEqual(['operator', 'viewer']);
    expect(policy.grantFor('operator')).toEqual({ role: 'operator', narrowings: null });
    expect(policy.grantFor('viewer')).toEqual({
      role: 'viewer',
      narrowings: [
        {
          interfaces: ['org.pantavisor.Example'],
          members: ['GetInfo', 'Get*'],
          paths: ['/org/pantavisor/*'],
        },
        { interfaces: ['org.freedesktop.DBus.Properties'], own: ['org.example.Viewer*'] },
      ],
    });
    // `any` is a role like any other: with a policy present, it must be listed.
    expect(policy.grantFor('any')).toBeNull();
    expect(policy.grantFor('stranger')).toBeNull();
  });

  it('lets a string entry lift the narrowings of the same role, whatever the order', () => {
    for (const list of [
      [{ role: 'op', methods: ['GET'] }, 'op'],
      ['op', { role: 'op', methods: ['GET'] }],
    ]) {
      expect(parseAllow(list, 'rest', WHERE).grantFor('op')).toEqual({ role: 'op', narrowings: null });
    }
  });

  it('takes an object entry with only a role for every type', () => {
    for (const type of ['unix', 'drm', 'rest', 'dbus', 'wayland'] as const) {
      expect(parseAllow([{ role: 'r' }], type, WHERE).grantFor('r')).toEqual({ role: 'r', narrowings: [{}] });
    }
  });

  it('accepts an empty list: no role may use the link', () => {
    expect(parseAllow([], 'unix', WHERE).grantFor('any')).toBeNull();
  });

  const refusals: [string, unknown, Parameters<typeof parseAllow>[1], string][] = [
    ['not an array', { operator: true }, 'dbus', `allow must be an array, not an object, at ${WHERE}`],
    ['null', null, 'dbus', `allow must be an array, not null, at ${WHERE}`],
    [
      'a number entry',
      [7],
      'unix',
      `an entry must be a role name or an object, not a number, at ${WHERE}: allow[0]`,
    ],
    ['an array entry', [['op']], 'unix', 'not an array, at'],
    ['an empty role', [''], 'unix', "'' is not a role name, at"],
    ['a role with a newline', ['a\nb'], 'unix', "'a\\nb' is not a role name"],
    ['a role with a space', ['a b'], 'unix', "'a b' is not a role name"],
    ['an object without role', [{ methods: ['GET'] }], 'rest', 'an object entry needs "role", at'],
    [
      'a role of the wrong type',
      [{ role: 5 }],
      'rest',
      `a role must be a string, not a number, at ${WHERE}: allow[0].role`,
    ],
    [
      'an unknown field',
      ['op', { role: 'v', method: ['GET'] }],
      'rest',
      `unknown field "method" (rest links take "methods", "paths"), at ${WHERE}: allow[1].method`,
    ],
    [
      'a field of another type',
      [{ role: 'v', globals: ['wl_shm'] }],
      'dbus',
      '"globals" narrows wayland links, not dbus links',
    ],
    [
      'any narrowing on unix',
      [{ role: 'v', paths: ['/x'] }],
      'unix',
      '"paths" narrows dbus/rest links, not unix links',
    ],
    [
      'an unknown field on drm',
      [{ role: 'v', nodes: [] }],
      'drm',
      'unknown field "nodes" (drm links take only "role")',
    ],
    [
      'a list that is a string',
      [{ role: 'v', members: 'Get' }],
      'dbus',
      'must be an array of strings, not a string, at',
    ],
    ['a pattern that is a number', [{ role: 'v', members: [1] }], 'dbus', 'allow[0].members[0]'],
    [
      'a star inside a pattern',
      [{ role: 'v', members: ['G*t'] }],
      'dbus',
      "'G*t' is not a D-Bus member name",
    ],
    ['a member with a dot', [{ role: 'v', members: ['a.b'] }], 'dbus', "'a.b' is not a D-Bus member name"],
    ['a relative path', [{ role: 'v', paths: ['org/x'] }], 'dbus', "'org/x' is not an absolute path"],
    [
      'a dot segment',
      [{ role: 'v', paths: ['/api/../admin'] }],
      'rest',
      "'/api/../admin' is not an absolute path",
    ],
    ['a space in a path', [{ role: 'v', paths: ['/a b'] }], 'rest', "'/a b' is not an absolute path"],
    ['a bare star path', [{ role: 'v', paths: ['*'] }], 'rest', "'*' is not an absolute path"],
    [
      'a method wildcard',
      [{ role: 'v', methods: ['GE*'] }],
      'rest',
      "'GE*' is not an HTTP method token, no wildcard",
    ],
    ['a method with a space', [{ role: 'v', methods: ['G T'] }], 'rest', 'is not an HTTP method token'],
    [
      'a global with a dash',
      [{ role: 'v', globals: ['wl-shm'] }],
      'wayland',
      "'wl-shm' is not a Wayland interface name",
    ],
  ];
  for (const [what, value, type, message] of refusals) {
    it(`refuses ${what}`, () => {
      let thrown: unknown;
      try {
        parseAllow(value, type, WHERE);
      } catch (error) {
        thrown = error;
      }
      expect(thrown).toBeInstanceOf(PolicyError);
      expect((thrown as Error).message).toMatch(/^policy error: /);
      expect((thrown as Error).message).toContain(message);
    });
  }
});

describe('matchesPattern', () => {
  it('matches exactly, or any suffix after a trailing star', () => {
    expect(matchesPattern('GetInfo', 'GetInfo')).toBe(true);
    expect(matchesPattern('GetInfo', 'GetInfoX')).toBe(false);
    expect(matchesPattern('Get*', 'Get')).toBe(true);
    expect(matchesPattern('Get*', 'GetAll')).toBe(true);
    expect(matchesPattern('Get*', 'Set')).toBe(false);
    expect(matchesPattern('/org/pantavisor/*', '/org/pantavisor/x/y')).toBe(true);
    expect(matchesPattern('/org/pantavisor/*', '/org/pantavisor')).toBe(false);
    expect(matchesPattern('*', 'anything')).toBe(true);
  });

  it('treats an absent list as no narrowing and an empty one as nothing allowed', () => {
    expect(matchesAny(undefined, 'x')).toBe(true);
    expect(matchesAny([], 'x')).toBe(false);
    expect(matchesAny(['a', 'x*'], 'xy')).toBe(true);
  });
});

describe('PatternSet', () => {
  it('matches exactly as matchesAny does, for any patterns and values', () => {
    const text = fc.stringMatching(/^[ab/]{0,4}\*?$/);
    fc.assert(
      fc.property(fc.array(text, { maxLength: 5 }), fc.stringMatching(/^[ab/]{0,5}$/), (patterns, value) => {
        expect(new PatternSet(patterns).has(value)).toBe(matchesAny(patterns, value));
      }),
      { seed: 20240601, numRuns: 2000 },
    );
  });

  it('matches against the rewritten fixed parts, and passes on what the rewrite throws', () => {
    const lower = new PatternSet(['/A/*', '/B'], (fixed) => fixed.toLowerCase());
    expect([lower.has('/a/x'), lower.has('/b'), lower.has('/B'), lower.has('/A/x')]).toEqual([
      true,
      true,
      false,
      false,
    ]);
    expect(
      () =>
        new PatternSet(['/ok', '/bad*'], (fixed, pattern) => {
          if (pattern.startsWith('/bad')) throw new Error(`unusable ${pattern}`);
          return fixed;
        }),
    ).toThrow('unusable /bad*');
  });
});

describe('parsePolicyFile', () => {
  const where = '/etc/pv-xconnect/allow.json in nm';
  it('maps service names to their lists', () => {
    const map = parsePolicyFile('{"api": ["operator"], "bus": [{"role": "v"}]}', where);
    expect([...map.keys()]).toEqual(['api', 'bus']);
    expect(map.get('api')).toEqual(['operator']);
  });

  it('refuses what is not a JSON object, naming the file', () => {
    expect(() => parsePolicyFile('["operator"]', where)).toThrow(
      `policy error: must be a JSON object mapping service names to allow lists, not an array, at ${where}`,
    );
    expect(() => parsePolicyFile('{"api": [', where)).toThrow(
      /^policy error: not valid JSON \(.*\), at \/etc/,
    );
  });
});
