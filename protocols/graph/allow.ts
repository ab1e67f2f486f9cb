// The access policy a provider states per service: its `allow` list (docs/architecture.md, "Role-based access
// policy"). Pure: JSON values in, a validated policy out. A malformed policy is an error, never ignored, because
// ignoring it would open the link.
import type { LinkType } from './xconnect-graph.js';

/** The fields an object entry may use to narrow what its role may do, by the link type they apply to. */
export const NARROWING_FIELDS = {
  dbus: ['interfaces', 'members', 'paths', 'own'],
  rest: ['methods', 'paths'],
  wayland: ['globals'],
  unix: [],
  drm: [],
} as const satisfies Record<LinkType, readonly string[]>;

type NarrowingField = (typeof NARROWING_FIELDS)[LinkType][number];

/**
 * What one object entry lets its role do. An absent field does not narrow on that axis. Patterns are exact, or
 * end with `*` to match any suffix (see `matchesPattern`). `own` (D-Bus) lists the well-known names the role may
 * request; absent means none.
 */
export type Narrowing = { readonly [F in NarrowingField]?: readonly string[] };

/** What the policy says about one role. */
export interface Grant {
  readonly role: string;
  /**
   * null: a string entry lists the role, so it may use the link without narrowing. Otherwise the role's object
   * entries: something is allowed when any one of them allows it.
   */
  readonly narrowings: readonly Narrowing[] | null;
}

/** A validated `allow` list for a link of one type. */
export interface AllowPolicy {
  readonly type: LinkType;
  /** Every role the policy lists. */
  readonly roles: readonly string[];
  /** The role's grant, or null when the policy does not list it (the link must then fail). */
  grantFor(role: string): Grant | null;
}

/** `policy error: <what>, at <where>`: the link's error, terminal until its spec changes. */
export class PolicyError extends Error {
  override name = 'PolicyError';
  constructor(
    /** What is wrong, without where. */
    readonly what: string,
    /** Where: the origin given to the parser, then `: allow[<i>].<field>…` inside the list. */
    readonly where: string,
  ) {
    super(`policy error: ${what}, at ${where}`);
  }
}

/** Longest pattern accepted: D-Bus names are at most 255 bytes, and a policy is no place for long text. */
const MAX_PATTERN_LENGTH = 1024;
const MAX_ENTRIES = 4096;

/** Per field: the characters a pattern (without its trailing `*`) may hold, and what that means in words. */
const PATTERN_SYNTAX: Record<NarrowingField, { valid: RegExp; expected: string; wildcard: boolean }> = {
  interfaces: { valid: /^[A-Za-z0-9_.]+$/, expected: 'a D-Bus interface name', wildcard: true },
  members: { valid: /^[A-Za-z0-9_]+$/, expected: 'a D-Bus member name', wildcard: true },
  own: { valid: /^[A-Za-z0-9_.-]+$/, expected: 'a D-Bus well-known bus name', wildcard: true },
  paths: {
    valid: /^\/[\x21-\x7e]*$/,
    expected: "an absolute path ('/' first, visible ASCII)",
    wildcard: true,
  },
  globals: { valid: /^[A-Za-z0-9_]+$/, expected: 'a Wayland interface name', wildcard: true },
  // Methods match exactly: HTTP tokens (RFC 9110 §5.6.2), no wildcard.
  methods: { valid: /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, expected: 'an HTTP method token', wildcard: false },
};

/** Whether `value` matches `pattern`: equal, or, for a pattern ending with `*`, starting with what precedes it. */
export function matchesPattern(pattern: string, value: string): boolean {
  return pattern.endsWith('*') ? value.startsWith(pattern.slice(0, -1)) : pattern === value;
}

/** Whether any of `patterns` matches `value`; an absent list does not narrow (always true). */
export function matchesAny(patterns: readonly string[] | undefined, value: string): boolean {
  return patterns === undefined || patterns.some((pattern) => matchesPattern(pattern, value));
}

/**
 * Patterns compiled for a check per message or request, matching as `matchesPattern` does: exact patterns in a set,
 * the fixed parts of `*` patterns in a list. `fixedPart` may rewrite each fixed part (REST normalizes paths) or
 * throw for a pattern that cannot be used.
 */
export class PatternSet {
  private readonly exact = new Set<string>();
  private readonly prefixes: string[] = [];

  constructor(
    patterns: readonly string[],
    fixedPart: (fixed: string, pattern: string) => string = (fixed) => fixed,
  ) {
    for (const pattern of patterns) {
      const wildcard = pattern.endsWith('*');
      const fixed = fixedPart(wildcard ? pattern.slice(0, -1) : pattern, pattern);
      if (wildcard) this.prefixes.push(fixed);
      else this.exact.add(fixed);
    }
  }

  has(value: string): boolean {
    if (this.exact.has(value)) return true;
    for (const prefix of this.prefixes) if (value.startsWith(prefix)) return true;
    return false;
  }
}

/**
 * Validates `allow` for a link of `type`. `where` names its origin in errors (e.g. `graph entry of nm/api` or
 * `/etc/pv-xconnect/allow.json in nm, "api"`); every error adds the JSON path inside the list.
 */
export function parseAllow(value: unknown, type: LinkType, where: string): AllowPolicy {
  if (!Array.isArray(value)) throw new PolicyError(`allow must be an array, not ${describe(value)}`, where);
  if (value.length > MAX_ENTRIES) throw new PolicyError(`more than ${MAX_ENTRIES} entries`, where);
  const grants = new Map<string, { narrowings: Narrowing[] | null }>();
  value.forEach((entry, index) => {
    const at = `${where}: allow[${index}]`;
    const { role, narrowing } = parseEntry(entry, type, at);
    const grant = grants.get(role) ?? { narrowings: [] };
    // A string entry lifts every narrowing of its role: it is listed without conditions.
    if (narrowing === null) grant.narrowings = null;
    else grant.narrowings?.push(narrowing);
    grants.set(role, grant);
  });
  return {
    type,
    roles: [...grants.keys()],
    grantFor(role) {
      const grant = grants.get(role);
      return grant ? { role, narrowings: grant.narrowings } : null;
    },
  };
}

function parseEntry(
  entry: unknown,
  type: LinkType,
  at: string,
): { role: string; narrowing: Narrowing | null } {
  if (typeof entry === 'string') return { role: checkRole(entry, at), narrowing: null };
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    throw new PolicyError(`an entry must be a role name or an object, not ${describe(entry)}`, at);
  }
  const fields = entry as Record<string, unknown>;
  if (!('role' in fields)) throw new PolicyError('an object entry needs "role"', at);
  const role = checkRole(fields.role, `${at}.role`);
  const allowed: readonly string[] = NARROWING_FIELDS[type];
  const narrowing: Record<string, readonly string[]> = {};
  for (const [field, list] of Object.entries(fields)) {
    if (field === 'role') continue;
    if (!allowed.includes(field)) {
      const owner = (Object.keys(NARROWING_FIELDS) as LinkType[]).filter((t) =>
        (NARROWING_FIELDS[t] as readonly string[]).includes(field),
      );
      throw new PolicyError(
        owner.length > 0
          ? `"${field}" narrows ${owner.join('/')} links, not ${type} links`
          : `unknown field "${field}" (${type} links take ${allowed.length > 0 ? allowed.map((f) => `"${f}"`).join(', ') : 'only "role"'})`,
        `${at}.${field}`,
      );
    }
    narrowing[field] = parsePatterns(list, field as NarrowingField, `${at}.${field}`);
  }
  return { role, narrowing };
}

function checkRole(role: unknown, at: string): string {
  if (typeof role !== 'string') throw new PolicyError(`a role must be a string, not ${describe(role)}`, at);
  if (role.length > MAX_PATTERN_LENGTH || !/^[\x21-\x7e]+$/.test(role)) {
    throw new PolicyError(`'${printable(role)}' is not a role name`, at);
  }
  return role;
}

function parsePatterns(list: unknown, field: NarrowingField, at: string): string[] {
  if (!Array.isArray(list)) throw new PolicyError(`must be an array of strings, not ${describe(list)}`, at);
  if (list.length > MAX_ENTRIES) throw new PolicyError(`more than ${MAX_ENTRIES} patterns`, at);
  const syntax = PATTERN_SYNTAX[field];
  return list.map((pattern, index) => {
    const here = `${at}[${index}]`;
    if (typeof pattern !== 'string')
      throw new PolicyError(`must be a string, not ${describe(pattern)}`, here);
    const fixed = syntax.wildcard && pattern.endsWith('*') ? pattern.slice(0, -1) : pattern;
    const fine =
      pattern.length <= MAX_PATTERN_LENGTH &&
      !fixed.includes('*') &&
      (fixed === '' ? pattern === '*' && field !== 'paths' : syntax.valid.test(fixed)) &&
      (field !== 'paths' || !hasDotSegment(fixed));
    if (!fine) {
      const star = syntax.wildcard ? ", optionally ending with '*'" : ', no wildcard';
      throw new PolicyError(`'${printable(pattern)}' is not ${syntax.expected}${star}`, here);
    }
    return pattern;
  });
}

/** A `.` or `..` segment: requests are matched after dot segments are removed, so such a pattern never matches. */
function hasDotSegment(path: string): boolean {
  return path.split('/').some((segment) => segment === '.' || segment === '..');
}

function printable(text: string): string {
  const shown = text.length > 80 ? `${text.slice(0, 80)}…` : text;
  return JSON.stringify(shown).slice(1, -1);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** The provider's own statement, `/etc/pv-xconnect/allow.json`: service name → that service's `allow` list. */
export const PROVIDER_POLICY_PATH = '/etc/pv-xconnect/allow.json';

/**
 * Reads the provider's policy file: a JSON object mapping service names to (unvalidated) `allow` lists; each list
 * is validated by `parseAllow` for the link that uses it. A file that is not such an object is a PolicyError.
 */
export function parsePolicyFile(text: string, where: string): ReadonlyMap<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new PolicyError(`not valid JSON (${(error as Error).message})`, where);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new PolicyError(
      `must be a JSON object mapping service names to allow lists, not ${describe(body)}`,
      where,
    );
  }
  return new Map(Object.entries(body));
}
