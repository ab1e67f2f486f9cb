// Pantavisor's service manifests (docs/simulator.md), parsed from JSON text. Pure: no I/O.
//
//   services.json  {"#spec": "service-manifest-xconnect@1", "services": [entry…]}  or a bare [entry…]; an entry
//                  is an export {name, type, socket, allow?, credentials?} or a hosted-bus name
//                  {type, bus, owns, role, allow} (that `allow` is upstream's: role names that may call the name)
//   run.json       {"#spec": "service-manifest-run@1", "name", "group", "status_goal", "restart_policy", "roles",
//                   "services": {"required": [req…], "optional": [req…]}}
//   args.json      {"PV_SERVICES_REQUIRED": [req…], "PV_SERVICES_OPTIONAL": [req…], "PV_RESTART_POLICY",
//                   "PV_ROLES"}, rendered into run.json
//
// Every problem is reported with the file and the JSON path of the offending value
// (`services.json: services[2].socket: must be an absolute path`); parsing goes on past a bad entry so that one
// run shows all of them. Keys nobody reads are warnings, with the key they probably misspell. Each kind of object
// lists its keys in one table (KEYS): a new field is one entry there and one line where the object is read.
import { PolicyError, parseAllow } from '../../protocols/graph/allow.js';
import {
  checkContainerPath,
  DIAL_IDENTITIES,
  type DialIdentity,
  LINK_TYPES,
  type LinkType,
} from '../../protocols/graph/xconnect-graph.js';
import { formatJsonError, parseJsonText, suggestKey } from './json-text.js';
import { GROUPS } from './platforms.js';

export const SERVICES_SPEC = 'service-manifest-xconnect@1';
export const RUN_SPEC = 'service-manifest-run@1';
/** The only bus Pantavisor hosts (a requirement of this name is served by it when the hosted bus is on). */
export const HOSTED_BUS = 'system-bus';

/** Where a value came from: its file (relative to the stack) and JSON path. */
export interface SourceRef {
  file: string;
  path: string;
}

/** A service a container provides. */
export interface ServiceExport {
  name: string;
  type: LinkType;
  /** Path of the real socket or device inside the provider. */
  socket: string;
  /** The roles that may use the service and what each may do (docs/simulator.md), as written; validated. */
  allow?: unknown[];
  /** Who unix and rest links dial the provider as; absent: root. */
  credentials?: DialIdentity;
  at: SourceRef;
}

/** A well-known D-Bus name a container owns on the hosted system bus, and the roles that may call it. */
export interface HostedBusName {
  bus: string;
  owns: string;
  /** The owner's role; upstream's default is the name itself. */
  role: string;
  allow: string[];
  at: SourceRef;
}

export interface ServicesManifest {
  exports: ServiceExport[];
  hostedNames: HostedBusName[];
}

/** A service a container asks for; the type, when given, is informational (the export's type wins). */
export interface ServiceRequirement {
  name: string;
  type: LinkType | null;
  role: string;
  interface: string | null;
  /** As declared: null means the daemon's default path. */
  target: string | null;
  at: SourceRef;
}

export interface RunManifest {
  name: string | null;
  group: string | null;
  statusGoal: string | null;
  roles: string[];
  restartPolicy: string | null;
  required: ServiceRequirement[];
  optional: ServiceRequirement[];
}

export interface ManifestProblem {
  file: string;
  /** JSON path of the value, e.g. `services[2].socket`; empty for the whole document. */
  path: string;
  message: string;
}

export interface Parsed<T> {
  value: T;
  problems: ManifestProblem[];
  /** Harmless but probably not meant: keys nobody reads. */
  warnings: ManifestProblem[];
}

export function formatProblem(problem: ManifestProblem): string {
  return problem.path
    ? `${problem.file}: ${problem.path}: ${problem.message}`
    : `${problem.file}: ${problem.message}`;
}

/** The keys each kind of object may have: others are warned about (`all`) or, where free-form keys are normal
 * (args.json holds any template argument), only when they look like a misspelling of a known one (`close`). */
const KEYS = {
  export: { known: ['name', 'type', 'socket', 'allow', 'credentials'], unknown: 'all' },
  hostedName: { known: ['type', 'bus', 'owns', 'role', 'allow'], unknown: 'all' },
  services: { known: ['#spec', 'services'], unknown: 'all' },
  requirement: { known: ['name', 'type', 'role', 'interface', 'target'], unknown: 'all' },
  requirementLists: { known: ['required', 'optional'], unknown: 'all' },
  // Every key upstream's run.json parser reads; the simulator uses some, the rest are accepted silently.
  run: {
    known: [
      '#spec',
      'name',
      'type',
      'group',
      'runlevel',
      'status_goal',
      'restart_policy',
      'roles',
      'services',
      'auto_recovery',
      'automodfw',
      'config',
      'dev-log',
      'drivers',
      'exports',
      'logs',
      'network',
      'root-volume',
      'share',
      'storage',
      'volumes',
    ],
    unknown: 'all',
  },
  args: {
    known: ['PV_SERVICES_REQUIRED', 'PV_SERVICES_OPTIONAL', 'PV_RESTART_POLICY', 'PV_ROLES'],
    unknown: 'close',
  },
} as const satisfies Record<string, { known: readonly string[]; unknown: 'all' | 'close' }>;

export const STATUS_GOALS = ['STARTED', 'READY'];
export const RESTART_POLICIES = ['system', 'container'];
/** Roles upstream gives a meaning to; any other is kept but warned about. */
const CONTAINER_ROLES = ['mgmt', 'nobody'];
const BUS_NAME = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)+$/;

/** Collects problems against one file while walking its JSON. */
class Checker {
  readonly problems: ManifestProblem[] = [];
  readonly warnings: ManifestProblem[] = [];
  constructor(readonly file: string) {}

  report(path: string, message: string): void {
    this.problems.push({ file: this.file, path, message });
  }

  warn(path: string, message: string): void {
    this.warnings.push({ file: this.file, path, message });
  }

  at(path: string): SourceRef {
    return { file: this.file, path };
  }

  json(text: string): unknown {
    const parsed = parseJsonText(text);
    if (parsed.ok) return parsed.value;
    this.report('', formatJsonError(parsed.error));
    return undefined;
  }

  /** Warns about the keys of `object` that `kind` does not have. */
  keys(object: Record<string, unknown>, path: string, kind: keyof typeof KEYS): void {
    const { known, unknown } = KEYS[kind];
    for (const key of Object.keys(object)) {
      if ((known as readonly string[]).includes(key)) continue;
      const suggestion = suggestKey(key, known);
      const at = path ? `${path}.${key}` : key;
      if (suggestion) this.warn(at, `unknown key (did you mean '${suggestion}'?)`);
      else if (unknown === 'all') this.warn(at, `unknown key, ignored (known: ${known.join(', ')})`);
    }
  }

  object(value: unknown, path: string): Record<string, unknown> | null {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      return value as Record<string, unknown>;
    }
    this.report(path, `must be an object (got ${describe(value)})`);
    return null;
  }

  /** A required non-empty string, or null (reported). */
  text(value: unknown, path: string): string | null {
    if (typeof value === 'string' && value !== '') return value;
    this.report(
      path,
      value === undefined ? 'is required' : `must be a non-empty string (got ${describe(value)})`,
    );
    return null;
  }

  /** An optional non-empty string: undefined or null → null. */
  optionalText(value: unknown, path: string): string | null {
    return value === undefined || value === null ? null : this.text(value, path);
  }

  /** An optional string out of `choices`. */
  choice(value: unknown, path: string, choices: readonly string[]): string | null {
    const text = this.optionalText(value, path);
    if (text === null || choices.includes(text)) return text;
    this.report(path, `'${text}' is not one of ${choices.join(', ')}`);
    return null;
  }

  group(value: unknown, path: string): string | null {
    const group = this.optionalText(value, path);
    if (group === 'data') {
      this.report(path, "group 'data' is not simulated (its containers are only mounted, never started)");
      return null;
    }
    if (group !== null && !(group in GROUPS)) {
      this.report(path, `unknown group '${group}' (expected one of ${Object.keys(GROUPS).join(', ')})`);
      return null;
    }
    return group;
  }

  roles(value: unknown, path: string): string[] {
    const roles = this.list(value, path, (item, at) => this.text(item, at));
    roles.forEach((role, index) => {
      if (!CONTAINER_ROLES.includes(role)) {
        this.warn(
          `${path}[${index}]`,
          `role '${role}' means nothing to Pantavisor (it knows mgmt and nobody)`,
        );
      }
    });
    return roles;
  }

  serviceName(value: unknown, path: string): string | null {
    const name = this.text(value, path);
    if (name !== null && (name.includes('/') || name.includes('\0') || name.startsWith('.'))) {
      this.report(path, `'${name}' must not contain '/' or NUL or start with '.'`);
      return null;
    }
    return name;
  }

  linkType(value: unknown, path: string): LinkType | null {
    const type = this.text(value, path);
    if (type === null) return null;
    if ((LINK_TYPES as readonly string[]).includes(type)) return type as LinkType;
    this.report(path, `unknown type '${type}' (expected one of ${LINK_TYPES.join(', ')})`);
    return null;
  }

  absolutePath(value: unknown, path: string): string | null {
    const text = this.text(value, path);
    if (text === null) return null;
    const problem = checkContainerPath(text);
    if (problem) {
      this.report(path, problem);
      return null;
    }
    return text;
  }

  spec(document: Record<string, unknown>, expected: string): void {
    const spec = document['#spec'];
    if (spec === undefined) this.report('#spec', `is required ('${expected}')`);
    else if (spec !== expected) this.report('#spec', `must be '${expected}' (got ${JSON.stringify(spec)})`);
  }

  /** Each element through `parse`; bad elements are reported and dropped, every good one is kept. */
  list<T>(value: unknown, path: string, parse: (item: unknown, path: string) => T | null): T[] {
    if (value === undefined || value === null) return [];
    if (!Array.isArray(value)) {
      this.report(path, `must be an array (got ${describe(value)})`);
      return [];
    }
    const items: T[] = [];
    value.forEach((item, index) => {
      const parsed = parse(item, `${path}[${index}]`);
      if (parsed !== null) items.push(parsed);
    });
    return items;
  }

  requirement = (item: unknown, path: string): ServiceRequirement | null => {
    const entry = this.object(item, path);
    if (!entry) return null;
    this.keys(entry, path, 'requirement');
    const before = this.problems.length;
    const name = this.serviceName(entry.name, `${path}.name`);
    const type = entry.type === undefined ? null : this.linkType(entry.type, `${path}.type`);
    const role = this.optionalText(entry.role, `${path}.role`) ?? 'any';
    const iface = this.optionalText(entry.interface, `${path}.interface`);
    const target =
      entry.target === undefined || entry.target === null
        ? null
        : this.absolutePath(entry.target, `${path}.target`);
    if (name === null || this.problems.length > before) return null;
    return { name, type, role, interface: iface, target, at: this.at(path) };
  };

  /** An export, or a hosted-bus name declaration (an entry with `owns`), as upstream's parser tells them apart. */
  serviceEntry = (item: unknown, path: string): ServiceExport | HostedBusName | null => {
    const entry = this.object(item, path);
    if (!entry) return null;
    if (entry.owns !== undefined) return this.hostedName(entry, path);
    this.keys(entry, path, 'export');
    const before = this.problems.length;
    const name = this.serviceName(entry.name, `${path}.name`);
    const type = this.linkType(entry.type, `${path}.type`);
    const socket = this.absolutePath(entry.socket, `${path}.socket`);
    const credentials = this.credentials(entry.credentials, `${path}.credentials`, type);
    if (type !== null && entry.allow !== undefined) this.allow(entry.allow, `${path}.allow`, type);
    if (name === null || type === null || socket === null || this.problems.length > before) return null;
    return {
      name,
      type,
      socket,
      ...(entry.allow === undefined ? {} : { allow: entry.allow as unknown[] }),
      ...(credentials === null ? {} : { credentials }),
      at: this.at(path),
    };
  };

  /** An export's `allow`, checked as the daemon checks it for a link of `type`; the first problem is reported. */
  private allow(value: unknown, path: string, type: LinkType): void {
    try {
      parseAllow(value, type, path);
    } catch (error) {
      if (!(error instanceof PolicyError)) throw error;
      // Inside the list the parser says `<path>: allow[i].field`: as a JSON path, `<path>[i].field`.
      const inside = error.where.startsWith(`${path}: allow`)
        ? error.where.slice(`${path}: allow`.length)
        : '';
      this.report(`${path}${inside}`, error.what);
    }
  }

  /** An export's `credentials`: `root` or `role`, the latter only for unix and rest. */
  private credentials(value: unknown, path: string, type: LinkType | null): DialIdentity | null {
    const credentials = this.choice(value, path, DIAL_IDENTITIES) as DialIdentity | null;
    if (credentials === 'role' && type !== null && type !== 'unix' && type !== 'rest') {
      this.report(path, `'role' applies to unix and rest services, not ${type}`);
      return null;
    }
    return credentials;
  }

  private hostedName(entry: Record<string, unknown>, path: string): HostedBusName | null {
    this.keys(entry, path, 'hostedName');
    const before = this.problems.length;
    const type = this.linkType(entry.type, `${path}.type`);
    if (type !== null && type !== 'dbus')
      this.report(`${path}.type`, "a name on the hosted bus is type 'dbus'");
    const bus = this.optionalText(entry.bus, `${path}.bus`) ?? HOSTED_BUS;
    if (bus !== HOSTED_BUS) this.report(`${path}.bus`, `'${bus}': the only hosted bus is '${HOSTED_BUS}'`);
    const owns = this.text(entry.owns, `${path}.owns`);
    if (owns !== null && !BUS_NAME.test(owns)) {
      this.report(`${path}.owns`, `'${owns}' is not a well-known D-Bus name (like org.example.Foo)`);
    }
    const role = this.optionalText(entry.role, `${path}.role`);
    const allow = this.list(entry.allow, `${path}.allow`, (value, at) => this.text(value, at));
    if (owns === null || this.problems.length > before) return null;
    return { bus, owns, role: role ?? owns, allow, at: this.at(path) };
  }
}

/** services.json: the spec'd object form or upstream's older bare array. */
export function parseServicesManifest(text: string, file = 'services.json'): Parsed<ServicesManifest> {
  const check = new Checker(file);
  const document = check.json(text);
  let entries: Array<ServiceExport | HostedBusName> = [];
  if (Array.isArray(document)) {
    entries = check.list(document, '', check.serviceEntry);
  } else if (document !== undefined) {
    const object = check.object(document, '');
    if (object) {
      check.keys(object, '', 'services');
      check.spec(object, SERVICES_SPEC);
      if (object.services === undefined) check.report('services', 'is required');
      entries = check.list(object.services, 'services', check.serviceEntry);
    }
  }
  // A bare array's paths read better as `services[2].socket`, as upstream names it.
  for (const problem of [...check.problems, ...check.warnings]) {
    if (problem.path.startsWith('[')) problem.path = `services${problem.path}`;
  }
  for (const entry of entries) {
    if (entry.at.path.startsWith('[')) entry.at.path = `services${entry.at.path}`;
  }
  const value: ServicesManifest = {
    exports: entries.filter((entry): entry is ServiceExport => 'socket' in entry),
    hostedNames: entries.filter((entry): entry is HostedBusName => 'owns' in entry),
  };
  return { value, problems: check.problems, warnings: check.warnings };
}

export const EMPTY_RUN: RunManifest = {
  name: null,
  group: null,
  statusGoal: null,
  roles: [],
  restartPolicy: null,
  required: [],
  optional: [],
};

export function parseRunManifest(text: string, file = 'run.json'): Parsed<RunManifest> {
  const check = new Checker(file);
  const done = (value: RunManifest) => ({ value, problems: check.problems, warnings: check.warnings });
  const document = check.json(text);
  if (document === undefined) return done({ ...EMPTY_RUN });
  const object = check.object(document, '');
  if (!object) return done({ ...EMPTY_RUN });
  check.keys(object, '', 'run');
  check.spec(object, RUN_SPEC);

  let required: ServiceRequirement[] = [];
  let optional: ServiceRequirement[] = [];
  if (object.services !== undefined) {
    const services = check.object(object.services, 'services');
    if (services) {
      check.keys(services, 'services', 'requirementLists');
      required = check.list(services.required, 'services.required', check.requirement);
      optional = check.list(services.optional, 'services.optional', check.requirement);
    }
  }
  return done({
    name: check.optionalText(object.name, 'name'),
    group: check.group(object.group, 'group'),
    statusGoal: check.choice(object.status_goal, 'status_goal', STATUS_GOALS),
    roles: check.roles(object.roles, 'roles'),
    restartPolicy: check.choice(object.restart_policy, 'restart_policy', RESTART_POLICIES),
    required,
    optional,
  });
}

/** What args.json says; a key that is absent leaves run.json's value alone. */
export interface ServiceArgs {
  required: ServiceRequirement[] | null;
  optional: ServiceRequirement[] | null;
  restartPolicy: string | null;
  roles: string[] | null;
}

export const NO_ARGS: ServiceArgs = { required: null, optional: null, restartPolicy: null, roles: null };

/** args.json: the PV_* keys Pantavisor's container template renders; other keys are template arguments. */
export function parseArgsManifest(text: string, file = 'args.json'): Parsed<ServiceArgs> {
  const check = new Checker(file);
  const document = check.json(text);
  const object = document === undefined ? null : check.object(document, '');
  if (object) check.keys(object, '', 'args');
  const pick = (key: string): ServiceRequirement[] | null =>
    object?.[key] === undefined ? null : check.list(object[key], key, check.requirement);
  return {
    value: {
      required: pick('PV_SERVICES_REQUIRED'),
      optional: pick('PV_SERVICES_OPTIONAL'),
      restartPolicy: check.choice(object?.PV_RESTART_POLICY, 'PV_RESTART_POLICY', RESTART_POLICIES),
      roles: object?.PV_ROLES === undefined ? null : check.roles(object.PV_ROLES, 'PV_ROLES'),
    },
    problems: check.problems,
    warnings: check.warnings,
  };
}

/** What `pvr app add --arg-json` does: the args' values replace run.json's. */
export function renderRunManifest(run: RunManifest | null, args: ServiceArgs): RunManifest {
  const base = run ?? EMPTY_RUN;
  return {
    ...base,
    required: args.required ?? base.required,
    optional: args.optional ?? base.optional,
    restartPolicy: args.restartPolicy ?? base.restartPolicy,
    roles: args.roles ?? base.roles,
  };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value);
  return typeof value === 'object' ? 'an object' : typeof value;
}
