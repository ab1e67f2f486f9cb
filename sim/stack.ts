// A stack on disk (docs/simulator.md): a folder per container with its manifests, `etc/` files and program, plus
// the stack's `checks.json`. Loading never throws on a bad stack: every problem is collected, with its file and
// JSON path, so `pvx-sim validate` can show them all.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { STACKS_DIR } from './paths.js';
import { type BuiltGraph, buildGraph, type PlatformServices } from './pv-ctrl/graph-builder.js';
import {
  formatProblem,
  type ManifestProblem,
  parseArgsManifest,
  parseRunManifest,
  parseServicesManifest,
  type RunManifest,
  renderRunManifest,
  type ServiceExport,
} from './pv-ctrl/manifests.js';

/** The program every container runs, relative to its folder (mounted at /app). */
export const PROGRAM = 'start';

export interface StackContainer extends PlatformServices {
  dir: string;
  run: RunManifest;
  exports: ServiceExport[];
  /** Whether the container sees the mock pv-ctrl at /pantavisor/pv-ctrl (role `mgmt`). */
  mgmt: boolean;
}

export type Expectation =
  /** stdout without its trailing newlines equals this. */
  | { kind: 'stdout'; text: string }
  /** stdout + stderr match this regular expression. */
  | { kind: 'match'; pattern: RegExp };

export interface Check {
  name: string;
  /** The container the command runs in. */
  container: string;
  /** A shell command (sh -c). */
  run: string;
  exit: number;
  expect: Expectation[];
  /** Seconds the check may keep retrying before it fails. */
  timeout: number;
}

export interface Stack {
  name: string;
  dir: string;
  containers: StackContainer[];
  checks: Check[];
  /** Every problem found, formatted `file: path: message`; a stack with problems must not run. */
  problems: string[];
  graph: BuiltGraph;
}

export const DEFAULT_CHECK_TIMEOUT = 10;

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
  const problems: ManifestProblem[] = [];
  const containers: StackContainer[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    if (!entry.isDirectory()) continue;
    containers.push(loadContainer(join(dir, entry.name), entry.name, dir, problems));
  }
  const checks = loadChecks(join(dir, 'checks.json'), dir, new Set(containers.map((c) => c.name)), problems);
  const graph = buildGraph(containers);
  return {
    name,
    dir,
    containers,
    checks,
    problems: [...problems.map(formatProblem), ...graph.errors],
    graph,
  };
}

const CONTAINER_NAME = /^[a-z0-9][a-z0-9_.-]*$/;

function loadContainer(dir: string, name: string, stackDir: string, problems: ManifestProblem[]) {
  const file = (base: string) => relative(stackDir, join(dir, base));
  const read = (base: string): string | null =>
    existsSync(join(dir, base)) ? readFileSync(join(dir, base), 'utf8') : null;
  if (!CONTAINER_NAME.test(name)) {
    problems.push({
      file: file(''),
      path: '',
      message: 'container folder names must match [a-z0-9][a-z0-9_.-]*',
    });
  }

  let run: RunManifest | null = null;
  const runText = read('run.json');
  if (runText !== null) {
    const parsed = parseRunManifest(runText, file('run.json'));
    problems.push(...parsed.problems);
    run = parsed.value;
    if (run.name !== null && run.name !== name) {
      problems.push({
        file: file('run.json'),
        path: 'name',
        message: `'${run.name}' differs from the container folder '${name}'`,
      });
    }
  }
  const argsText = read('args.json');
  if (argsText !== null) {
    const parsed = parseArgsManifest(argsText, file('args.json'));
    problems.push(...parsed.problems);
    run = renderRunManifest(run, parsed.value);
  }
  run ??= renderRunManifest(null, { required: null, optional: null });

  let exports: ServiceExport[] = [];
  const servicesText = read('services.json');
  if (servicesText !== null) {
    const parsed = parseServicesManifest(servicesText, file('services.json'));
    problems.push(...parsed.problems);
    exports = parsed.value;
  }
  if (!existsSync(join(dir, PROGRAM))) {
    problems.push({ file: file(PROGRAM), path: '', message: 'missing: every container needs a program' });
  }
  return { name, dir, run, exports, mgmt: run.roles.includes('mgmt') };
}

/** checks.json: `{"checks": [{"name", "in", "run", "exit"?, "stdout"?, "match"?, "timeout"?}…]}`. */
function loadChecks(path: string, stackDir: string, containers: Set<string>, problems: ManifestProblem[]) {
  const file = relative(stackDir, path);
  if (!existsSync(path)) return [];
  const report = (at: string, message: string) => problems.push({ file, path: at, message });
  let document: unknown;
  try {
    document = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    report('', `not valid JSON: ${(error as Error).message}`);
    return [];
  }
  const list = (document as { checks?: unknown } | null)?.checks;
  if (!Array.isArray(list)) {
    report('checks', 'must be an array');
    return [];
  }
  const checks: Check[] = [];
  list.forEach((item: unknown, index) => {
    const at = `checks[${index}]`;
    const entry = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    const before = problems.length;
    const text = (key: string) => {
      const value = entry[key];
      if (typeof value === 'string' && value !== '') return value;
      report(`${at}.${key}`, 'must be a non-empty string');
      return '';
    };
    const name = text('name');
    const container = text('in');
    const run = text('run');
    if (container && !containers.has(container))
      report(`${at}.in`, `no container '${container}' in the stack`);
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
    if (problems.length > before) return;
    checks.push({ name, container, run, exit: exit as number, expect, timeout: timeout as number });
  });
  return checks;
}
