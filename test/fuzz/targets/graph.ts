// Fuzz targets of the xconnect graph and manifest parsers: JSON documents from a generator of plausible and odd
// values, then mutated as text. The parsers must never throw (but GraphError for a body that is not an array),
// every link or entry they keep must satisfy values.ebnf, and what they keep must parse again to itself.
import fc from 'fast-check';
import { PolicyError, parseAllow } from '../../../protocols/graph/allow.js';
import {
  checkContainerPath,
  DIAL_IDENTITIES,
  GraphError,
  LINK_TYPES,
  type LinkType,
  parseGraph,
} from '../../../protocols/graph/xconnect-graph.js';
import {
  parseArgsManifest,
  parseRunManifest,
  parseServicesManifest,
} from '../../../sim/pv-ctrl/manifests.js';
import { Grammar, grammarInput } from '../grammar.js';
import { disagree } from '../oracle.js';
import type { FuzzTarget } from '../target.js';

let valuesGrammar: Grammar | undefined;
const values = (): Grammar => {
  valuesGrammar ??= Grammar.load(['protocols/graph/grammar/values.ebnf']);
  return valuesGrammar;
};

const MAX_PATH = 4096;
const pathArb = () =>
  fc.oneof(
    grammarInput(values(), 'container_path', {
      snippets: ['/', '.', '..', '\0', 'a', ' '],
      boundaries: [MAX_PATH],
    }),
    fc.constantFrom('/run/a.sock', '/dev/dri/card0', 'relative', '/a/../b', null),
  );
const nameArb = () =>
  fc.oneof(
    grammarInput(values(), 'service_name', { snippets: ['/', '.', '\0'] }),
    fc.constantFrom('', 'x', 7),
  );
const odd = fc.constantFrom<unknown>(null, true, 1.5, -1, 0, [], {}, 'str', 2 ** 53);

function entryArb(): fc.Arbitrary<Record<string, unknown>> {
  const typeArb = fc.oneof(fc.constantFrom(...LINK_TYPES), fc.constantFrom('bogus', 'UNIX', ''), odd);
  return fc.record(
    {
      consumer: fc.oneof(fc.constantFrom('app', '_pv_', ''), odd),
      consumer_pid: fc.oneof(fc.integer({ min: -2, max: 99999 }), odd),
      provider: fc.oneof(fc.constantFrom('svc', '_pv_'), odd),
      provider_pid: fc.oneof(fc.integer({ min: -2, max: 99999 }), odd),
      name: nameArb(),
      type: typeArb,
      role: fc.oneof(fc.constantFrom('any', 'admin', ''), odd),
      interface: fc.oneof(fc.constantFrom('org.a', 'rest'), odd),
      target: pathArb(),
      socket: pathArb(),
      uid: fc.oneof(fc.integer({ min: -1, max: 2 ** 32 }), odd),
      extra: odd,
    },
    { requiredKeys: ['consumer', 'name', 'socket', 'type', 'provider'] },
  );
}

/** JSON text of `value`, sometimes with one to three characters inserted, deleted or replaced. */
function jsonText(value: fc.Arbitrary<unknown>): fc.Arbitrary<string> {
  const edit = fc.record({
    at: fc.nat(),
    kind: fc.nat({ max: 2 }),
    char: fc.constantFrom('{', '}', '[', ']', ',', '"', ':', '\\', '0', ' '),
  });
  return fc
    .tuple(
      value.map((v) => JSON.stringify(v) ?? 'null'),
      fc.array(edit, { maxLength: 2 }),
    )
    .map(([text, edits]) => {
      let out = text;
      for (const { at, kind, char } of edits) {
        const i = at % (out.length + 1);
        out =
          kind === 0
            ? out.slice(0, i) + char + out.slice(i)
            : kind === 1
              ? out.slice(0, i) + out.slice(i + 1)
              : out.slice(0, i) + char + out.slice(i + 1);
      }
      return out;
    });
}

/** The grammar and the parser agree on a path a link keeps. */
function checkPath(path: string, where: string): void {
  const grammatical = values().accepts('container_path', path) && path.length <= MAX_PATH;
  if ((checkContainerPath(path) === null) !== grammatical)
    disagree(`${where}: checkContainerPath and values.ebnf disagree`, { path, grammatical });
}

export const graphTarget: FuzzTarget<string> = {
  name: 'graph',
  codec: 'graph',
  description:
    'parseGraph on generated and mutated graphs: kept links are valid, unique, and parse again to themselves',
  sources: ['protocols/graph/xconnect-graph.ts'],
  ciRuns: 15000,
  minBehaviours: 7,
  arbitrary() {
    return jsonText(
      fc.oneof(
        {
          weight: 8,
          arbitrary: fc.array(fc.oneof({ weight: 6, arbitrary: entryArb() }, { weight: 1, arbitrary: odd }), {
            maxLength: 5,
          }),
        },
        { weight: 1, arbitrary: odd },
      ),
    );
  },
  check(text) {
    let parsed: ReturnType<typeof parseGraph>;
    try {
      parsed = parseGraph(text);
    } catch (error) {
      if (error instanceof GraphError) return 'refused';
      throw error;
    }
    const body = JSON.parse(text) as unknown[];
    if (parsed.links.length + parsed.warnings.length !== body.length)
      disagree('every entry is either a link or a warning', { text, parsed });
    const keys = new Set<string>();
    for (const link of parsed.links) {
      checkPath(link.socket, 'socket');
      checkPath(link.target, 'target');
      if (!values().accepts('service_name', link.name)) disagree('a kept link has a bad name', { link });
      const key = JSON.stringify([link.consumer, link.name, link.target]);
      if (keys.has(key)) disagree('two links share a key', { text });
      keys.add(key);
    }
    // What was kept, written as graph entries, parses to the same links.
    const again = parseGraph(
      JSON.stringify(
        parsed.links.map((l) => ({
          consumer: l.consumer,
          consumer_pid: l.consumerPid,
          provider: l.provider,
          provider_pid: l.providerPid,
          name: l.name,
          type: l.type,
          role: l.role,
          interface: l.interface,
          target: l.target,
          socket: l.socket,
          uid: l.uid,
        })),
      ),
    );
    if (JSON.stringify(again.links) !== JSON.stringify(parsed.links) || again.warnings.length > 0)
      disagree('kept links do not parse again to themselves', { text, again });
    return `links:${Math.min(parsed.links.length, 3)}:warnings:${Math.min(parsed.warnings.length, 3)}`;
  },
};

type ManifestKind = 'services' | 'run' | 'args';

function manifestArb(): fc.Arbitrary<{ kind: ManifestKind; text: string }> {
  const requirement = fc.record(
    {
      name: nameArb(),
      type: fc.oneof(fc.constantFrom(...LINK_TYPES), odd),
      role: fc.oneof(fc.constantFrom('any', 'x'), odd),
      interface: odd,
      target: pathArb(),
    },
    { requiredKeys: [] },
  );
  const exportEntry = fc.record(
    {
      name: nameArb(),
      type: fc.oneof(fc.constantFrom(...LINK_TYPES), odd),
      socket: pathArb(),
      allow: fc.oneof(allowListArb(), odd),
      credentials: fc.oneof(fc.constantFrom(...DIAL_IDENTITIES, 'nobody'), odd),
    },
    { requiredKeys: [] },
  );
  const services = fc.oneof(
    fc.record(
      {
        '#spec': fc.oneof(fc.constant('service-manifest-xconnect@1'), odd),
        services: fc.oneof(fc.array(exportEntry, { maxLength: 4 }), odd),
      },
      { requiredKeys: [] },
    ),
    fc.array(fc.oneof(exportEntry, odd), { maxLength: 4 }),
  );
  const run = fc.record(
    {
      '#spec': fc.oneof(fc.constant('service-manifest-run@1'), odd),
      name: fc.oneof(fc.constant('app'), odd),
      roles: fc.oneof(fc.array(fc.oneof(fc.constant('r'), odd), { maxLength: 3 }), odd),
      services: fc.oneof(
        fc.record(
          {
            required: fc.oneof(fc.array(requirement, { maxLength: 3 }), odd),
            optional: fc.oneof(fc.array(requirement, { maxLength: 3 }), odd),
          },
          { requiredKeys: [] },
        ),
        odd,
      ),
    },
    { requiredKeys: [] },
  );
  const args = fc.record(
    {
      PV_SERVICES_REQUIRED: fc.oneof(fc.array(requirement, { maxLength: 3 }), odd),
      PV_SERVICES_OPTIONAL: odd,
    },
    { requiredKeys: [] },
  );
  return fc.oneof(
    fc.record({ kind: fc.constant('services' as const), text: jsonText(services) }),
    fc.record({ kind: fc.constant('run' as const), text: jsonText(run) }),
    fc.record({ kind: fc.constant('args' as const), text: jsonText(args) }),
  );
}

export const manifestsTarget: FuzzTarget<{ kind: ManifestKind; text: string }> = {
  name: 'manifests',
  codec: 'graph',
  description:
    'services.json, run.json, args.json: never throw, every problem names its file, kept values are valid',
  sources: ['sim/pv-ctrl/manifests.ts'],
  ciRuns: 15000,
  minBehaviours: 12,
  arbitrary: manifestArb,
  check({ kind, text }) {
    const file = `${kind}.json`;
    const parse = { services: parseServicesManifest, run: parseRunManifest, args: parseArgsManifest }[kind];
    const result = parse(text, file);
    for (const problem of result.problems)
      if (problem.file !== file || problem.message === '')
        disagree('a problem without its file or message', { text, problem });
    const kept =
      kind === 'services'
        ? (result.value as ReturnType<typeof parseServicesManifest>['value']).exports
        : kind === 'run'
          ? [
              ...(result.value as ReturnType<typeof parseRunManifest>['value']).required,
              ...(result.value as ReturnType<typeof parseRunManifest>['value']).optional,
            ]
          : [...((result.value as ReturnType<typeof parseArgsManifest>['value']).required ?? [])];
    for (const entry of kept as {
      name: string;
      type: LinkType | null;
      socket?: string;
      target?: string | null;
      allow?: unknown;
      credentials?: string;
    }[]) {
      if (!values().accepts('service_name', entry.name))
        disagree('a kept entry has a bad name', { text, entry });
      // A kept export's allow list is one the daemon accepts for its type, and so is its dial identity.
      if (entry.allow !== undefined && entry.type !== null) {
        try {
          parseAllow(entry.allow, entry.type, 'fuzz');
        } catch (error) {
          disagree('a kept export has an allow list the daemon refuses', {
            text,
            entry,
            error: String(error),
          });
        }
      }
      if (entry.credentials === 'role' && entry.type !== 'unix' && entry.type !== 'rest')
        disagree('a kept export dials as the role but is neither unix nor rest', { text, entry });
      if (entry.socket !== undefined) checkPath(entry.socket, 'socket');
      if (typeof entry.target === 'string') checkPath(entry.target, 'target');
    }
    const outcome = result.problems.length > 0 ? 'problems' : 'clean';
    return `${kind}:${outcome}:${Math.min(kept.length, 2)}`;
  },
};

const PATTERNS = fc.constantFrom(
  'org.example.Iface',
  'org.example.*',
  '*',
  'Get*',
  'GetInfo',
  '/org/pantavisor/*',
  '/',
  'GET',
  'POST',
  'wl_seat',
  'xdg_*',
  'org.a-b.Name',
  'a b',
  '',
  'ü',
  '**',
);

/** An allow list: role strings, object entries with narrowing fields, odd values. */
function allowListArb(): fc.Arbitrary<unknown[]> {
  const field = fc.constantFrom(
    'interfaces',
    'members',
    'paths',
    'own',
    'methods',
    'globals',
    'role',
    'bogus',
  );
  const entry = fc.oneof(
    fc.constantFrom('any', 'viewer', 'admin', ''),
    fc.dictionary(
      field,
      fc.oneof(fc.array(PATTERNS, { maxLength: 3 }), fc.constantFrom('viewer', 'any'), odd),
      {
        maxKeys: 3,
      },
    ),
    odd,
  );
  return fc.array(entry, { maxLength: 5 });
}

/** An allow list for one link type, as JSON text. */
function allowArb(): fc.Arbitrary<{ type: string; text: string }> {
  return fc.record({
    type: fc.constantFrom(...LINK_TYPES),
    text: jsonText(fc.oneof({ weight: 8, arbitrary: allowListArb() }, { weight: 1, arbitrary: odd })),
  });
}

export const allowTarget: FuzzTarget<{ type: string; text: string }> = {
  name: 'allow',
  codec: 'graph',
  description:
    'provider allow lists: only PolicyError, every listed role granted, a policy parses again to itself',
  sources: ['protocols/graph/allow.ts'],
  ciRuns: 15000,
  minBehaviours: 18,
  arbitrary: allowArb,
  check({ type, text }) {
    const linkType = type as (typeof LINK_TYPES)[number];
    let policy: ReturnType<typeof parseAllow>;
    try {
      policy = parseAllow(JSON.parse(text), linkType, 'fuzz');
    } catch (error) {
      if (error instanceof PolicyError || error instanceof SyntaxError) return `${type}:refused`;
      throw error;
    }
    // Written back as an allow list (a role with no narrowing as a string entry), it reads the same.
    const entries = policy.roles.flatMap((role): unknown[] => {
      const grant = policy.grantFor(role);
      if (!grant) disagree('a listed role has no grant', { text, role });
      return grant?.narrowings === null ? [role] : (grant?.narrowings ?? []).map((n) => ({ role, ...n }));
    });
    const again = parseAllow(entries, linkType, 'again');
    for (const role of policy.roles)
      if (JSON.stringify(again.grantFor(role)) !== JSON.stringify(policy.grantFor(role)))
        disagree('a policy does not parse again to itself', { text, role });
    if (policy.grantFor('\u0000not-listed') !== null) disagree('an unlisted role was granted', { text });
    return `${type}:accepted:${Math.min(policy.roles.length, 2)}`;
  },
};
