// A stack on disk (docs/simulator.md): a folder per container with its manifests, `etc/` files and program, plus
// the stack's `checks.json` and, optionally, `pantavisor.config`. Loading never throws on a bad stack: every
// problem is collected, with its file and JSON path, so `pvx-sim validate` can show them all.
import { accessSync, constants, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { STACKS_DIR } from './paths.js';
import { type BuiltGraph, buildGraph, type PlatformServices } from './pv-ctrl/graph-builder.js';
import { allocateRoleUids, type OwnedName, UPSTREAM_BUS_SOCKET } from './pv-ctrl/hosted-bus.js';
import { formatJsonError, parseJsonText, suggestKey } from './pv-ctrl/json-text.js';
import {
  formatProblem,
  HOSTED_BUS,
  type HostedBusName,
  type ManifestProblem,
  NO_ARGS,
  type Parsed,
  parseArgsManifest,
  parseRunManifest,
  parseServicesManifest,
  type RunManifest,
  renderRunManifest,
  type ServiceExport,
} from './pv-ctrl/manifests.js';
import { type PlatformSettings, settleGroups } from './pv-ctrl/platforms.js';

/** The program every container runs, relative to its folder (mounted at /app). */
export const PROGRAM = 'start';
/** Stack-wide Pantavisor configuration (key=value lines), as a device's pantavisor.config. */
export const CONFIG_FILE = 'pantavisor.config';
export const HOSTED_BUS_KEY = 'xconnect.dbus.systembus.enabled';

export interface StackContainer extends PlatformServices {
  dir: string;
  run: RunManifest;
  exports: ServiceExport[];
  hostedNames: HostedBusName[];
  /** Group, status goal, restart policy and roles, defaults applied as upstream applies them. */
  settings: PlatformSettings;
}

export type Expectation =
  /** stdout without its trailing newlines equals this. */
  | { kind: 'stdout'; text: string }
  /** stdout + stderr (or the console) match this regular expression. */
  | { kind: 'match'; pattern: RegExp };

export interface Check {
  name: string;
  /** The container the command runs in, or whose console is read. */
  container: string;
  /** A shell command (sh -c); null for a console check. */
  run: string | null;
  /** Judge the container's console (what its program printed) instead of a command's output. */
  console: boolean;
  exit: number;
  expect: Expectation[];
  /** Seconds the check may keep retrying before it fails. */
  timeout: number;
  /** After the command, pv-xconnect's open fds must be back within `slack` of their count before it. */
  daemonFds: { slack: number } | null;
}

export interface Stack {
  name: string;
  dir: string;
  containers: StackContainer[];
  checks: Check[];
  /** Every problem found, formatted `file: path: message`; a stack with problems must not run. */
  problems: string[];
  /** Harmless but probably not meant (misspelled keys…), same format. */
  warnings: string[];
  /** Role → uid on the hosted system bus; null when pantavisor.config does not turn it on. */
  hostedBus: { uids: Map<string, number>; names: OwnedName[] } | null;
  graph: BuiltGraph;
}

export const DEFAULT_CHECK_TIMEOUT = 10;
export const DEFAULT_FD_SLACK = 2;

/** `name` is a folder under sim/stacks/ or a path to a stack folder. */
export function resolveStackDir(name: string): string {
  if (isAbsolute(name) || name.startsWith('.') || name.includes('/')) return resolve(name);
  return join(STACKS_DIR, name);
}

export function loadStack(nameOrPath: string): Stack {
  const dir = resolveStackDir(nameOrPath);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new Error(`stack '${nameOrPath}' not found (no folder ${dir})`);
  }
  const name = dir.split('/').filter(Boolean).pop() ?? nameOrPath;
  const found = new Findings();
  const loaded = readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((entry) => loadContainer(join(dir, entry.name), entry.name, dir, found));
  const settings = settleGroups(loaded.map(({ name, run }) => ({ ...run, name })));
  const containers: StackContainer[] = loaded.map((container) => ({
    ...container,
    settings: settings.get(container.name) as PlatformSettings,
  }));
  const config = loadConfig(join(dir, CONFIG_FILE), found);
  const checks = loadChecks(join(dir, 'checks.json'), dir, new Set(containers.map((c) => c.name)), found);

  let hostedBus: Stack['hostedBus'] = null;
  const names = containers.flatMap((container) =>
    container.hostedNames.map((owned) => ({ ...owned, platform: container.name })),
  );
  if (config.get(HOSTED_BUS_KEY) === true) {
    const roles = containers.flatMap((container) =>
      [...container.run.required, ...container.run.optional]
        .filter((requirement) => requirement.name === HOSTED_BUS)
        .map((requirement) => requirement.role),
    );
    hostedBus = { uids: allocateRoleUids(names, roles), names };
  } else {
    for (const owned of names) {
      found.warnings.push({
        ...owned.at,
        message: `owns '${owned.owns}' on the hosted bus, which is off (${HOSTED_BUS_KEY}=1 in ${CONFIG_FILE})`,
      });
    }
  }
  const graph = buildGraph(
    containers,
    new Map(),
    hostedBus && { socket: UPSTREAM_BUS_SOCKET, uidOf: (role) => hostedBus?.uids.get(role) ?? -1 },
  );
  return {
    name,
    dir,
    containers,
    checks,
    problems: [...found.problems.map(formatProblem), ...graph.errors],
    warnings: [...found.warnings.map(formatProblem), ...graph.warnings],
    hostedBus,
    graph,
  };
}

class Findings {
  readonly problems: ManifestProblem[] = [];
  readonly warnings: ManifestProblem[] = [];

  add<T>(parsed: Parsed<T>): T {
    this.problems.push(...parsed.problems);
    this.warnings.push(...parsed.warnings);
    return parsed.value;
  }

  problem(file: string, path: string, message: string): void {
    this.problems.push({ file, path, message });
  }

  warning(file: string, path: string, message: string): void {
    this.warnings.push({ file, path, message });
  }
}

const CONTAINER_NAME = /^[a-z0-9][a-z0-9_.-]*$/;

function loadContainer(dir: string, name: string, stackDir: string, found: Findings) {
  const file = (base: string) => relative(stackDir, join(dir, base));
  const read = (base: string): string | null =>
    existsSync(join(dir, base)) ? readFileSync(join(dir, base), 'utf8') : null;
  if (!CONTAINER_NAME.test(name)) {
    found.problem(file(''), '', 'container folder names must match [a-z0-9][a-z0-9_.-]*');
  }

  let run: RunManifest | null = null;
  const runText = read('run.json');
  if (runText !== null) {
    run = found.add(parseRunManifest(runText, file('run.json')));
    if (run.name !== null && run.name !== name) {
      found.problem(file('run.json'), 'name', `'${run.name}' differs from the container folder '${name}'`);
    }
  }
  const argsText = read('args.json');
  const args = argsText === null ? NO_ARGS : found.add(parseArgsManifest(argsText, file('args.json')));
  run = renderRunManifest(run, args);

  const servicesText = read('services.json');
  const services =
    servicesText === null
      ? { exports: [], hostedNames: [] }
      : found.add(parseServicesManifest(servicesText, file('services.json')));

  const program = join(dir, PROGRAM);
  if (!existsSync(program)) {
    found.problem(file(PROGRAM), '', 'missing: every container needs a program');
  } else if (!statSync(program).isFile()) {
    found.problem(file(PROGRAM), '', 'must be a file');
  } else if (!executable(program)) {
    found.problem(file(PROGRAM), '', `not executable (chmod +x ${file(PROGRAM)})`);
  }
  return { name, dir, run, ...services };
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    // root passes X_OK whenever any execute bit is set; a file with none is what we catch.
    return (statSync(path).mode & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** pantavisor.config: `key=value` lines and `#` comments; only the keys the simulator acts on are read. */
function loadConfig(path: string, found: Findings): Map<string, boolean> {
  const config = new Map<string, boolean>();
  if (!existsSync(path)) return config;
  for (const [index, raw] of readFileSync(path, 'utf8').split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const at = `line ${index + 1}`;
    const equals = line.indexOf('=');
    const key = line.slice(0, equals).trim();
    const value = line.slice(equals + 1).trim();
    if (equals < 0) {
      found.problem(CONFIG_FILE, at, `expected key=value, got '${line}'`);
    } else if (key !== HOSTED_BUS_KEY) {
      const suggestion = suggestKey(key, [HOSTED_BUS_KEY]);
      found.warning(
        CONFIG_FILE,
        at,
        suggestion
          ? `unknown key '${key}' (did you mean '${suggestion}'?)`
          : `'${key}' is not simulated, ignored`,
      );
    } else if (!['0', '1', 'true', 'false'].includes(value)) {
      found.problem(CONFIG_FILE, at, `${key}: expected 1 or 0, got '${value}'`);
    } else {
      config.set(key, value === '1' || value === 'true');
    }
  }
  return config;
}

const CHECK_KEYS = ['name', 'in', 'run', 'console', 'exit', 'stdout', 'match', 'timeout', 'daemon_fds'];

/** checks.json: `{"checks": [{"name", "in", "run" | "console", "exit"?, "stdout"?, "match"?, "timeout"?,
 * "daemon_fds"?}…]}`. */
function loadChecks(path: string, stackDir: string, containers: Set<string>, found: Findings): Check[] {
  const file = relative(stackDir, path);
  if (!existsSync(path)) return [];
  const report = (at: string, message: string) => found.problem(file, at, message);
  const parsed = parseJsonText(readFileSync(path, 'utf8'));
  if (!parsed.ok) {
    report('', formatJsonError(parsed.error));
    return [];
  }
  const list = (parsed.value as { checks?: unknown } | null)?.checks;
  if (!Array.isArray(list)) {
    report('checks', 'must be an array');
    return [];
  }
  const checks: Check[] = [];
  list.forEach((item: unknown, index) => {
    const at = `checks[${index}]`;
    const entry = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    for (const key of Object.keys(entry)) {
      if (CHECK_KEYS.includes(key)) continue;
      const suggestion = suggestKey(key, CHECK_KEYS);
      found.warning(
        file,
        `${at}.${key}`,
        suggestion ? `unknown key (did you mean '${suggestion}'?)` : 'unknown key',
      );
    }
    const before = found.problems.length;
    const text = (key: string) => {
      const value = entry[key];
      if (typeof value === 'string' && value !== '') return value;
      report(`${at}.${key}`, 'must be a non-empty string');
      return '';
    };
    const name = text('name');
    const container = text('in');
    if (container && !containers.has(container))
      report(`${at}.in`, `no container '${container}' in the stack`);
    const isConsole = entry.console === true;
    if (entry.console !== undefined && typeof entry.console !== 'boolean')
      report(`${at}.console`, 'must be true or false');
    const run = isConsole ? null : text('run');
    if (isConsole && entry.run !== undefined) report(`${at}.run`, 'a console check runs no command');
    if (
      isConsole &&
      (entry.exit !== undefined || entry.stdout !== undefined || entry.daemon_fds !== undefined)
    ) {
      report(at, 'a console check has only a match');
    }
    if (isConsole && entry.match === undefined) report(`${at}.match`, 'a console check needs a match');
    const exit = entry.exit ?? 0;
    if (!Number.isInteger(exit)) report(`${at}.exit`, 'must be an integer exit code');
    const timeout = entry.timeout ?? DEFAULT_CHECK_TIMEOUT;
    if (typeof timeout !== 'number' || !(timeout > 0))
      report(`${at}.timeout`, 'must be a number of seconds > 0');
    const expect: Expectation[] = [];
    if (entry.stdout !== undefined) {
      if (typeof entry.stdout === 'string') expect.push({ kind: 'stdout', text: entry.stdout });
      else report(`${at}.stdout`, 'must be a string');
    }
    if (entry.match !== undefined) {
      try {
        if (typeof entry.match !== 'string') throw new Error('must be a string');
        expect.push({ kind: 'match', pattern: new RegExp(entry.match) });
      } catch (error) {
        report(`${at}.match`, (error as Error).message);
      }
    }
    const daemonFds = parseDaemonFds(entry.daemon_fds, `${at}.daemon_fds`, report);
    if (found.problems.length > before) return;
    checks.push({
      name,
      container,
      run,
      console: isConsole,
      exit: exit as number,
      expect,
      timeout: timeout as number,
      daemonFds,
    });
  });
  return checks;
}

function parseDaemonFds(
  value: unknown,
  at: string,
  report: (at: string, message: string) => void,
): Check['daemonFds'] {
  if (value === undefined) return null;
  const slack = (value as { slack?: unknown } | null)?.slack ?? DEFAULT_FD_SLACK;
  const keys = typeof value === 'object' && value !== null ? Object.keys(value) : null;
  if (
    keys === null ||
    keys.some((key) => key !== 'slack') ||
    !Number.isInteger(slack) ||
    (slack as number) < 0
  ) {
    report(
      at,
      'must be an object {"slack": N}: how many fds above its count before the command pv-xconnect may keep',
    );
    return null;
  }
  return { slack: slack as number };
}
