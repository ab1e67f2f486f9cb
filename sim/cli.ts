#!/usr/bin/env node
// pvx-sim: bring up a stack of containers with a mock pv-ctrl and the real pv-xconnect, check it, show it, take
// it down. See docs/simulator.md.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError } from '../daemon/options.js';
import type { CheckResult } from './check-runner.js';
import { type LiveLink, toDot, toMermaid } from './graph-picture.js';
import { instancePaths, SIM_CLI, STATE_ROOT } from './paths.js';
import { allowsRole } from './pv-ctrl/graph-builder.js';
// Docker (testcontainers) loads only for the commands that need it: validate and graph stay quick.
import type { DockerRuntime } from './runtime.js';
import type { LinkStatus, Simulator } from './simulator.js';
import { loadStack, type Stack } from './stack.js';
import { formatTable } from './table.js';
import { getJson } from './unix-http.js';

const USAGE = `Usage: pvx-sim COMMAND [options]

  up STACK [--detach] [--port N]
                             start the stack; serve its live page and show its links until Ctrl-C
                             (--detach: leave it running in the background)
  check STACK [--watch] [--port N]
                             start, wait for the links, run every check, print the results, tear down;
                             exit 1 if any check failed (--watch: serve the live page meanwhile and keep the
                             stack up after the results until Ctrl-C)
  down [NAME] [--keep-images] stop and remove a stack instance (all of them without NAME), and the image
  status [NAME] [--json]     the links of a running instance, from pv-xconnect's status API
  logs NAME CONTAINER        what a container's program printed (its console)
  graph STACK [--format dot|mermaid|svg] [--output FILE]
                             the stack's graph as Graphviz DOT (default), Mermaid, or SVG (needs Graphviz);
                             with the link states when the instance (--name, default the stack) is up
  validate STACK             check the manifests and the graph; print every problem and warning

  STACK is a folder under sim/stacks/ (showcase, upstream-examples, hosted-bus) or a path to one.
  --name NAME       instance name (default: the stack's name); containers are pvx-sim-NAME-<container>
  --interval S      pv-xconnect's poll interval in seconds (default 1)
  --port N          the live page's port on 127.0.0.1 (default: any free one, printed)
`;

const OPTIONS = {
  name: { type: 'string' },
  interval: { type: 'string' },
  detach: { type: 'boolean' },
  background: { type: 'boolean' },
  watch: { type: 'boolean' },
  port: { type: 'string' },
  'keep-images': { type: 'boolean' },
  format: { type: 'string' },
  output: { type: 'string', short: 'o' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

const progress = (message: string) => write(process.stderr, `pvx-sim: ${message}\n`);

// --- ending well ------------------------------------------------------------------------------------------------

/** What must happen before this process exits (a stack it brought up goes down). */
let cleanup: (() => Promise<void>) | null = null;
let exiting = false;
/** The exit code after Ctrl-C or SIGTERM: 130 while checking, 0 for `up` (its normal end). */
let signalExitCode = 130;

/** Tears down whatever this process brought up, then exits with `code`; later calls wait for the first. */
function exitAfterCleanup(code: number, why: string): void {
  if (exiting) return;
  exiting = true;
  progress(why);
  (cleanup ? cleanup() : Promise.resolve()).catch(() => {}).finally(() => process.exit(code));
}

/**
 * Output to a reader that went away (`pvx-sim check … | head -1`) must not kill the process before it tears the
 * stack down: a broken pipe ends the run as Ctrl-C does, with the shell's code for SIGPIPE.
 */
function write(stream: NodeJS.WriteStream, text: string): void {
  if (stream.writable) stream.write(text);
}

for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    exitAfterCleanup(141, 'output closed (broken pipe): tearing down');
  });
}

/** Runs `bringUp`, making sure that whatever it brings up goes down on a signal, a broken pipe or an error. */
async function withStack(bringUp: () => Promise<Simulator>): Promise<Simulator> {
  const pending = bringUp();
  cleanup = async () => {
    const sim = await pending.catch(() => null);
    await sim?.down();
  };
  return pending;
}

// --- commands ---------------------------------------------------------------------------------------------------

async function main(argv: string[]): Promise<number> {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, target, ...extra] = positionals;
  if (values.help || command === undefined || command === 'help') {
    write(process.stdout, USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (extra.length > (command === 'logs' ? 1 : 0)) {
    throw new UsageError(`unexpected arguments: ${extra.slice(command === 'logs' ? 1 : 0).join(' ')}`);
  }
  const stackArg = () => {
    if (target === undefined) throw new UsageError(`${command}: which stack? (e.g. showcase)`);
    return target;
  };
  switch (command) {
    case 'validate':
      return validate(loadStack(stackArg()));
    case 'graph':
      return graph(loadStack(stackArg()), values);
    case 'check':
      return check(loadStack(stackArg()), values);
    case 'up':
      return up(loadStack(stackArg()), values);
    case 'down':
      return down(target, values['keep-images'] === true);
    case 'status':
      return status(target, values.json === true);
    case 'logs':
      if (target === undefined || extra[0] === undefined)
        throw new UsageError('logs: which instance and container?');
      return logs(target, extra[0]);
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

function intervalOf(values: Values): number {
  const interval = Number(values.interval ?? '1');
  if (!(interval > 0)) throw new UsageError(`--interval: expected seconds > 0, got '${values.interval}'`);
  return interval;
}

function portOf(values: Values): number {
  const port = Number(values.port ?? '0');
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--port: expected a port number, got '${values.port}'`);
  }
  return port;
}

function validate(stack: Stack): number {
  for (const warning of stack.warnings) write(process.stdout, `warning: ${warning}\n`);
  if (stack.problems.length > 0) {
    for (const problem of stack.problems) write(process.stdout, `error: ${problem}\n`);
    write(process.stdout, `${stack.name}: ${stack.problems.length} problem(s)\n`);
    return 1;
  }
  write(
    process.stdout,
    `${stack.name}: ok (${stack.containers.length} containers, ${stack.graph.links.length} links, ` +
      `${stack.checks.length} checks${stack.warnings.length > 0 ? `, ${stack.warnings.length} warning(s)` : ''})\n`,
  );
  return 0;
}

async function graph(stack: Stack, values: Values): Promise<number> {
  const instance = values.name ?? stack.name;
  // Live states when that instance is up (its status socket answers); the plain graph otherwise.
  const live = await getJson<LiveLink[]>(instancePaths(instance).statusSocket, '/links').catch(
    () => undefined,
  );
  if (live) progress(`graph: link states of the running instance '${instance}'`);
  const picture = {
    containers: stack.containers.map((container) => container.name),
    links: stack.graph.links,
    live,
  };
  const format = values.format ?? (values.output?.endsWith('.svg') ? 'svg' : 'dot');
  let text: string | Buffer;
  if (format === 'dot') text = toDot(picture, stack.name);
  else if (format === 'mermaid') text = toMermaid(picture);
  else if (format === 'svg') {
    const rendered = spawnSync('dot', ['-Tsvg'], { input: toDot(picture, stack.name) });
    if (rendered.error || rendered.status !== 0) {
      progress('graph: SVG needs Graphviz (apt-get install graphviz); use --format dot');
      return 1;
    }
    text = rendered.stdout;
  } else throw new UsageError(`--format: expected dot, mermaid or svg, got '${format}'`);
  if (values.output) writeFileSync(values.output, text);
  else write(process.stdout, text.toString());
  return stack.problems.length > 0 ? 1 : 0;
}

function linkTable(links: LinkStatus[]): string {
  const denied = links.some((link) => typeof link.denied === 'number');
  return formatTable(
    [
      'CONSUMER',
      'SERVICE',
      'TYPE',
      'ROLE',
      'PROVIDER',
      'STATE',
      'CONN',
      ...(denied ? ['DENIED'] : []),
      'ERROR',
    ],
    links.map((link) => [
      link.consumer,
      link.name,
      link.type,
      link.role,
      link.provider,
      link.state,
      `${link.connections.active}/${link.connections.total}`,
      ...(denied ? [String(link.denied ?? '')] : []),
      link.error ?? '',
    ]),
  );
}

function checkTable(results: CheckResult[]): string {
  return formatTable(
    ['RESULT', 'TIME', 'CONTAINER', 'CHECK', 'WHY'],
    results.map((result) => [
      result.passed ? 'PASS' : 'FAIL',
      `${(result.ms / 1000).toFixed(1)}s`,
      result.check.container,
      result.check.name,
      result.reason ?? '',
    ]),
  );
}

/** Serves the live page of `sim` until the process ends; resolves with its address. */
async function livePage(sim: Simulator, port: number): Promise<string> {
  const { LiveMonitor } = await import('./live.js');
  const { serveLivePage } = await import('./web-server.js');
  const monitor = new LiveMonitor(sim);
  monitor.start();
  const page = await serveLivePage(monitor, sim.paths.ctrlSocket, port);
  const previous = cleanup;
  cleanup = async () => {
    await page.close();
    await monitor.stop();
    await previous?.();
  };
  return page.url;
}

async function check(stack: Stack, values: Values): Promise<number> {
  if (stack.problems.length > 0) return validate(stack);
  const started = Date.now();
  const { Simulator } = await import('./simulator.js');
  const sim = await withStack(() =>
    Simulator.up(stack, { instance: values.name, intervalSeconds: intervalOf(values), onProgress: progress }),
  );
  if (values.watch) progress(`live page: ${await livePage(sim, portOf(values))}`);
  progress('waiting for the links');
  const links = await sim.waitForLinks(30_000);
  write(process.stdout, linkTable(links));
  const results = await sim.runChecks((result) =>
    progress(`${result.passed ? 'PASS' : 'FAIL'} ${result.check.name}`),
  );
  write(process.stdout, `\n${checkTable(results)}`);
  const failed = results.filter((result) => !result.passed);
  for (const result of failed) {
    const command = result.check.console ? `(console of ${result.check.container})` : `$ ${result.check.run}`;
    write(
      process.stdout,
      `\n--- ${result.check.name} (in ${result.check.container}, ${result.attempts} attempts)\n` +
        `${command}\nexit ${result.last.exitCode}\n${result.last.stdout}${result.last.stderr}`,
    );
  }
  if (failed.length > 0 && existsSync(sim.paths.daemonLog)) {
    const log = readFileSync(sim.paths.daemonLog, 'utf8').split('\n').slice(-40).join('\n');
    write(process.stdout, `\n--- pv-xconnect log (last lines)\n${log}\n`);
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  write(
    process.stdout,
    `\n${stack.name}: ${results.length - failed.length} passed, ${failed.length} failed in ${seconds} s\n`,
  );
  const code = failed.length === 0 ? 0 : 1;
  if (values.watch) {
    progress('the stack stays up for the live page: Ctrl-C to tear it down');
    signalExitCode = code;
    return new Promise(() => {});
  }
  progress('tearing down');
  await sim.down();
  cleanup = null;
  return code;
}

async function up(stack: Stack, values: Values): Promise<number> {
  const instance = values.name ?? stack.name;
  const interval = intervalOf(values);
  const port = portOf(values);
  if (values.detach) return detach(stack, instance, interval, port);
  signalExitCode = 0;
  const { Simulator } = await import('./simulator.js');
  const sim = await withStack(() =>
    Simulator.up(stack, { instance, intervalSeconds: interval, onProgress: progress }),
  );
  const url = await livePage(sim, port);
  progress('waiting for the links');
  const active = (await sim.waitForLinks(30_000)).filter((link) => link.state === 'active').length;
  const refused = stack.graph.links.filter((link) => !allowsRole(link)).length;
  progress(
    `links: ${active}/${stack.graph.links.length} active${refused > 0 ? ` (${refused} refused by their allow list)` : ''}`,
  );
  writeFileSync(sim.paths.readyFile, `${url}\n`);
  progress(
    `up: instance '${instance}', pv-ctrl at ${sim.paths.ctrlSocket}; Ctrl-C (or pvx-sim down) to stop`,
  );
  progress(`live page: ${url}`);
  if (values.background) return new Promise(() => {});
  let last = '';
  for (;;) {
    const links = await sim.links().catch(() => []);
    const daemon = sim.daemon.state();
    const view =
      `${stack.name} (${instance}): pv-xconnect ${daemon.pid > 0 ? `pid ${daemon.pid}` : 'not running'}` +
      `, ${links.filter((link) => link.state === 'active').length}/${links.length} links active; ${url}\n\n` +
      linkTable(links);
    if (view !== last) {
      // Redraw in place on a terminal; elsewhere print each change once.
      write(process.stdout, process.stdout.isTTY ? `\x1b[H\x1b[2J${view}` : `${view}\n`);
      last = view;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/** Re-runs `up` in the background and waits until it reports the stack up (or dies). */
async function detach(stack: Stack, instance: string, interval: number, port: number): Promise<number> {
  const paths = instancePaths(instance);
  rmSync(paths.readyFile, { force: true });
  const log = openSync(paths.simLog, 'w');
  const child = spawn(
    process.execPath,
    [
      SIM_CLI,
      'up',
      stack.dir,
      '--name',
      instance,
      '--interval',
      String(interval),
      '--port',
      String(port),
      '--background',
    ],
    { detached: true, stdio: ['ignore', log, log] },
  );
  closeSync(log);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = Date.now() + 180_000;
  while (!existsSync(paths.readyFile) || readFileSync(paths.readyFile, 'utf8') === '') {
    if (exited || Date.now() > deadline) {
      write(process.stderr, readFileSync(paths.simLog, 'utf8'));
      progress(`up --detach: the background pvx-sim ${exited ? 'exited' : 'did not come up'}`);
      if (!exited) child.kill('SIGTERM');
      return 1;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  child.unref();
  progress(`up: '${instance}' runs in the background (pid ${child.pid}, log ${paths.simLog})`);
  progress(`pv-ctrl: ${paths.ctrlSocket}; pv-xconnect status: ${paths.statusSocket}`);
  progress(`live page: ${readFileSync(paths.readyFile, 'utf8').trim()}`);
  progress(`stop it with: pvx-sim down ${instance}`);
  return 0;
}

/** Instances known on this host: state folders and labelled containers. */
async function instances(runtime: DockerRuntime | null): Promise<string[]> {
  const names = new Set(runtime ? (await runtime.list()).map((container) => container.instance) : []);
  if (existsSync(STATE_ROOT)) {
    for (const entry of readdirSync(STATE_ROOT, { withFileTypes: true })) {
      if (entry.isDirectory()) names.add(entry.name);
    }
  }
  return [...names].filter(Boolean).sort();
}

const known = (names: string[]) => (names.length > 0 ? `(up: ${names.join(', ')})` : '(none is up)');

async function down(instance: string | undefined, keepImages: boolean): Promise<number> {
  const { DockerRuntime } = await import('./runtime.js');
  const { processRunning, removeInstanceContainers, runningOwner } = await import('./simulator.js');
  const runtime = await DockerRuntime.connect();
  const all = await instances(runtime);
  if (instance !== undefined && !all.includes(instance)) {
    progress(`down: no stack instance '${instance}' on this host ${known(all)}`);
    return 1;
  }
  const targets = instance === undefined ? all : [instance];
  for (const name of targets) {
    const paths = instancePaths(name);
    const owner = runningOwner(paths.pidFile);
    if (owner > 0) {
      // The owner tears down what it started (pv-xconnect first, so it unplants its sockets).
      process.kill(owner, 'SIGTERM');
      const deadline = Date.now() + 30_000;
      while (processRunning(owner) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const removed = await removeInstanceContainers(runtime, name);
    rmSync(paths.root, { recursive: true, force: true });
    rmSync(paths.simLog, { force: true });
    progress(`down: '${name}'${removed > 0 ? ` (${removed} containers removed)` : ''}`);
  }
  if (targets.length === 0) progress('down: no stack instance found');
  if (!keepImages) {
    if (await runtime.removeImage()) progress('down: image removed');
    else progress('down: image kept (other simulator containers still use it)');
  }
  return 0;
}

async function status(instance: string | undefined, json: boolean): Promise<number> {
  const up = (await instances(null)).filter((entry) => existsSync(instancePaths(entry).pidFile));
  let name = instance;
  if (name === undefined) {
    if (up.length !== 1) {
      progress(up.length === 0 ? 'status: no stack is up' : `status: which one? ${up.join(', ')}`);
      return 1;
    }
    name = up[0] as string;
  } else if (!up.includes(name)) {
    progress(`status: no stack instance '${name}' is up ${known(up)}`);
    return 1;
  }
  const paths = instancePaths(name);
  let links: LinkStatus[];
  try {
    links = await getJson<LinkStatus[]>(paths.statusSocket, '/links');
  } catch (error) {
    progress(
      `status: '${name}' is up but pv-xconnect does not answer on ${paths.statusSocket} ` +
        `(${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): stopped through pv-ctrl? ` +
        `(pvcontrol daemons ls)`,
    );
    return 1;
  }
  write(process.stdout, json ? `${JSON.stringify(links, null, 2)}\n` : linkTable(links));
  const page = existsSync(paths.readyFile) ? readFileSync(paths.readyFile, 'utf8').trim() : '';
  if (page && !json) progress(`live page: ${page}`);
  return 0;
}

async function logs(instance: string, container: string): Promise<number> {
  const { DockerRuntime } = await import('./runtime.js');
  const runtime = await DockerRuntime.connect();
  const containers = await runtime.list(instance);
  const found = containers.find((entry) => entry.name === container);
  if (!found) {
    progress(
      containers.length === 0
        ? `logs: no stack instance '${instance}' is up`
        : `logs: no container '${container}' in '${instance}' (${containers.map((entry) => entry.name).join(', ')})`,
    );
    return 1;
  }
  write(process.stdout, await runtime.logs(found.id));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    if (!exiting) process.exit(code);
  },
  (error: Error) => {
    if (error instanceof UsageError) {
      write(process.stderr, `pvx-sim: ${error.message}\n\n${USAGE}`);
      process.exit(2);
    }
    exitAfterCleanup(1, error.message);
  },
);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => exitAfterCleanup(signalExitCode, 'stopping…'));
}
