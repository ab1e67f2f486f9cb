// Pantavisor's service manifests (docs/simulator.md), parsed from JSON text. Pure: no I/O.
//
//   services.json  {"#spec": "service-manifest-xconnect@1", "services": [export…]}  or a bare [export…]
//   run.json       {"#spec": "service-manifest-run@1", "name", "services": {"required": [req…], "optional": [req…]}}
//   args.json      {"PV_SERVICES_REQUIRED": [req…], "PV_SERVICES_OPTIONAL": [req…]}, rendered into run.json
//
// Every problem is reported with the file and the JSON path of the offending value
// (`services.json: services[2].socket: must be an absolute path`); parsing goes on past a bad entry so that one
// run shows all of them.
import { checkContainerPath, LINK_TYPES, type LinkType } from '../../protocols/graph/xconnect-graph.js';

export const SERVICES_SPEC = 'service-manifest-xconnect@1';
export const RUN_SPEC = 'service-manifest-run@1';

/** A service a container provides. */
export interface ServiceExport {
  name: string;
  type: LinkType;
  /** Path of the real socket or device inside the provider. */
  socket: string;
}

/** A service a container asks for; the type, when given, is informational (the export's type wins). */
export interface ServiceRequirement {
  name: string;
  type: LinkType | null;
  role: string;
  interface: string | null;
  target: string | null;
}

export interface RunManifest {
  name: string | null;
  group: string | null;
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
}

export function formatProblem(problem: ManifestProblem): string {
  return problem.path
    ? `${problem.file}: ${problem.path}: ${problem.message}`
    : `${problem.file}: ${problem.message}`;
}

/** Collects problems against one file while walking its JSON. */
class Checker {
  readonly problems: ManifestProblem[] = [];
  constructor(readonly file: string) {}

  report(path: string, message: string): void {
    this.problems.push({ file: this.file, path, message });
  }

  json(text: string): unknown {
    try {
      return JSON.parse(text);
    } catch (error) {
      this.report('', `not valid JSON: ${(error as Error).message}`);
      return undefined;
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
    return { name, type, role, interface: iface, target };
  };

  export = (item: unknown, path: string): ServiceExport | null => {
    const entry = this.object(item, path);
    if (!entry) return null;
    const name = this.serviceName(entry.name, `${path}.name`);
    const type = this.linkType(entry.type, `${path}.type`);
    const socket = this.absolutePath(entry.socket, `${path}.socket`);
    if (name === null || type === null || socket === null) return null;
    return { name, type, socket };
  };
}

/** services.json: the spec'd object form or upstream's older bare array. */
export function parseServicesManifest(text: string, file = 'services.json'): Parsed<ServiceExport[]> {
  const check = new Checker(file);
  const document = check.json(text);
  let exports: ServiceExport[] = [];
  if (Array.isArray(document)) {
    exports = check.list(document, '', check.export);
  } else if (document !== undefined) {
    const object = check.object(document, '');
    if (object) {
      check.spec(object, SERVICES_SPEC);
      if (object.services === undefined) check.report('services', 'is required');
      exports = check.list(object.services, 'services', check.export);
    }
  }
  // Fix the paths of a bare array: `[2].socket` reads better as `services[2].socket`, as upstream names it.
  for (const problem of check.problems) {
    if (problem.path.startsWith('[')) problem.path = `services${problem.path}`;
  }
  return { value: exports, problems: check.problems };
}

const EMPTY_RUN: RunManifest = {
  name: null,
  group: null,
  roles: [],
  restartPolicy: null,
  required: [],
  optional: [],
};

export function parseRunManifest(text: string, file = 'run.json'): Parsed<RunManifest> {
  const check = new Checker(file);
  const document = check.json(text);
  if (document === undefined) return { value: { ...EMPTY_RUN }, problems: check.problems };
  const object = check.object(document, '');
  if (!object) return { value: { ...EMPTY_RUN }, problems: check.problems };
  check.spec(object, RUN_SPEC);

  let required: ServiceRequirement[] = [];
  let optional: ServiceRequirement[] = [];
  if (object.services !== undefined) {
    const services = check.object(object.services, 'services');
    if (services) {
      required = check.list(services.required, 'services.required', check.requirement);
      optional = check.list(services.optional, 'services.optional', check.requirement);
    }
  }
  const roles = check.list(object.roles, 'roles', (item, path) => check.text(item, path));
  return {
    value: {
      name: check.optionalText(object.name, 'name'),
      group: check.optionalText(object.group, 'group'),
      roles,
      restartPolicy: check.optionalText(object.restart_policy, 'restart_policy'),
      required,
      optional,
    },
    problems: check.problems,
  };
}

export interface ServiceArgs {
  required: ServiceRequirement[] | null;
  optional: ServiceRequirement[] | null;
}

/** args.json: only the PV_SERVICES_* keys matter here; a key that is absent leaves run.json's list alone. */
export function parseArgsManifest(text: string, file = 'args.json'): Parsed<ServiceArgs> {
  const check = new Checker(file);
  const document = check.json(text);
  const object = document === undefined ? null : check.object(document, '');
  const pick = (key: string): ServiceRequirement[] | null =>
    object?.[key] === undefined ? null : check.list(object[key], key, check.requirement);
  return {
    value: { required: pick('PV_SERVICES_REQUIRED'), optional: pick('PV_SERVICES_OPTIONAL') },
    problems: check.problems,
  };
}

/** What `pvr app add --arg-json` does: the args' requirement lists replace run.json's. */
export function renderRunManifest(run: RunManifest | null, args: ServiceArgs): RunManifest {
  const base = run ?? EMPTY_RUN;
  return {
    ...base,
    required: args.required ?? base.required,
    optional: args.optional ?? base.optional,
  };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value);
  return typeof value === 'object' ? 'an object' : typeof value;
}
