#!/usr/bin/env node
// pvx-sim: bring up a stack of containers with a mock pv-ctrl and the real pv-xconnect, check it, show it, take
// it down. See docs/simulator.md.
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { UsageError } from '../daemon/options.js';
import type { CheckResult } from './check-runner.js';
import { toDot, toMermaid } from './graph-picture.js';
import { instancePaths, SIM_CLI, STATE_ROOT } from './paths.js';
// Docker (testcontainers) loads only for the commands that need it: validate and graph stay quick.
import type { DockerRuntime } from './runtime.js';
import type { LinkStatus, Simulator } from './simulator.js';
import { loadStack, type Stack } from './stack.js';
import { formatTable } from './table.js';
import { getJson } from './unix-http.js';

const USAGE = `Usage: pvx-sim COMMAND [options]

  up STACK [--detach]        start the stack; show its links live until Ctrl-C (--detach: leave it running)
  check STACK                start, wait for the links, run every check, print the results, tear down;
                             exit 1 if any check failed
  down [NAME] [--keep-images] stop and remove a stack instance (all of them without NAME), and the image
  status [NAME]              the links of a running instance, from pv-xconnect's status API
  graph STACK [--format dot|mermaid|svg] [--output FILE]
                             the stack's graph as Graphviz DOT (default), Mermaid, or SVG (needs Graphviz)
  validate STACK             check the manifests and the graph; print every problem

  STACK is a folder under sim/stacks/ (showcase, upstream-examples) or a path to one.
  --name NAME       instance name (default: the stack's name); containers are pvx-sim-NAME-<container>
  --interval S      pv-xconnect's poll interval in seconds (default 1)
  --json            status as JSON
`;

const OPTIONS = {
  name: { type: 'string' },
  interval: { type: 'string' },
  detach: { type: 'boolean' },
  background: { type: 'boolean' },
  'keep-images': { type: 'boolean' },
  format: { type: 'string' },
  output: { type: 'string', short: 'o' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

const progress = (message: string) => process.stderr.write(`pvx-sim: ${message}\n`);

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
    process.stdout.write(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
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
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

function intervalOf(values: Values): number {
  const interval = Number(values.interval ?? '1');
  if (!(interval > 0)) throw new UsageError(`--interval: expected seconds > 0, got '${values.interval}'`);
  return interval;
}

function validate(stack: Stack): number {
  for (const warning of stack.graph.warnings) process.stdout.write(`warning: ${warning}\n`);
  if (stack.problems.length > 0) {
    for (const problem of stack.problems) process.stdout.write(`error: ${problem}\n`);
    process.stdout.write(`${stack.name}: ${stack.problems.length} problem(s)\n`);
    return 1;
  }
  process.stdout.write(
    `${stack.name}: ok (${stack.containers.length} containers, ${stack.graph.links.length} links, ` +
      `${stack.checks.length} checks)\n`,
  );
  return 0;
}

function graph(stack: Stack, values: Values): number {
  const picture = {
    containers: stack.containers.map((container) => container.name),
    links: stack.graph.links,
  };
  const format = values.format ?? (values.output?.endsWith('.svg') ? 'svg' : 'dot');
  let text: string | Buffer;
  if (format === 'dot') text = toDot(picture, stack.name);
  else if (format === 'mermaid') text = toMermaid(picture);
  else if (format === 'svg') {
    const rendered = spawnSync('dot', ['-Tsvg'], { input: toDot(picture, stack.name) });
    if (rendered.error || rendered.status !== 0) {
      process.stderr.write(
        'pvx-sim: graph: SVG needs Graphviz (apt-get install graphviz); use --format dot\n',
      );
      return 1;
    }
    text = rendered.stdout;
  } else throw new UsageError(`--format: expected dot, mermaid or svg, got '${format}'`);
  if (values.output) writeFileSync(values.output, text);
  else process.stdout.write(text);
  return stack.problems.length > 0 ? 1 : 0;
}

function linkTable(links: LinkStatus[]): string {
  return formatTable(
    ['CONSUMER', 'SERVICE', 'TYPE', 'ROLE', 'PROVIDER', 'STATE', 'CONN', 'ERROR'],
    links.map((link) => [
      link.consumer,
      link.name,
      link.type,
      link.role,
      link.provider,
      link.state,
      `${link.connections.active}/${link.connections.total}`,
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

/** Tears the simulator down on SIGINT/SIGTERM, then exits with `code`; repeated signals wait for the same. */
function downOnSignal(sim: () => Simulator | null, code = 130): void {
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    progress('stopping…');
    const running = sim();
    (running ? running.down() : Promise.resolve()).finally(() => process.exit(code));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function check(stack: Stack, values: Values): Promise<number> {
  if (stack.problems.length > 0) return validate(stack);
  const started = Date.now();
  let sim: Simulator | null = null;
  downOnSignal(() => sim);
  const { Simulator } = await import('./simulator.js');
  sim = await Simulator.up(stack, {
    instance: values.name,
    intervalSeconds: intervalOf(values),
    onProgress: progress,
  });
  try {
    progress('waiting for the links');
    const links = await sim.waitForLinks(30_000);
    process.stdout.write(linkTable(links));
    const results = await sim.runChecks((result) =>
      progress(`${result.passed ? 'PASS' : 'FAIL'} ${result.check.name}`),
    );
    process.stdout.write(`\n${checkTable(results)}`);
    const failed = results.filter((result) => !result.passed);
    for (const result of failed) {
      process.stdout.write(
        `\n--- ${result.check.name} (in ${result.check.container}, ${result.attempts} attempts)\n` +
          `$ ${result.check.run}\nexit ${result.last.exitCode}\n${result.last.stdout}${result.last.stderr}`,
      );
    }
    if (failed.length > 0 && existsSync(sim.paths.daemonLog)) {
      const log = readFileSync(sim.paths.daemonLog, 'utf8').split('\n').slice(-40).join('\n');
      process.stdout.write(`\n--- pv-xconnect log (last lines)\n${log}\n`);
    }
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    process.stdout.write(
      `\n${stack.name}: ${results.length - failed.length} passed, ${failed.length} failed in ${seconds} s\n`,
    );
    return failed.length === 0 ? 0 : 1;
  } finally {
    progress('tearing down');
    await sim.down();
  }
}

async function up(stack: Stack, values: Values): Promise<number> {
  const instance = values.name ?? stack.name;
  const interval = intervalOf(values);
  if (values.detach) return detach(stack, instance, interval);
  let sim: Simulator | null = null;
  downOnSignal(() => sim, 0);
  const { Simulator } = await import('./simulator.js');
  sim = await Simulator.up(stack, { instance, intervalSeconds: interval, onProgress: progress });
  writeFileSync(sim.paths.readyFile, '');
  progress(
    `up: instance '${instance}', pv-ctrl at ${sim.paths.ctrlSocket}; Ctrl-C (or pvx-sim down) to stop`,
  );
  if (values.background) return new Promise(() => {});
  const live = sim;
  let last = '';
  for (;;) {
    const links = await live.links().catch(() => []);
    const daemon = live.daemon.state();
    const view =
      `${stack.name} (${instance}): pv-xconnect ${daemon.pid > 0 ? `pid ${daemon.pid}` : 'not running'}` +
      `, ${links.filter((link) => link.state === 'active').length}/${links.length} links active\n\n` +
      linkTable(links);
    if (view !== last) {
      // Redraw in place on a terminal; elsewhere print each change once.
      process.stdout.write(process.stdout.isTTY ? `\x1b[H\x1b[2J${view}` : `${view}\n`);
      last = view;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/** Re-runs `up` in the background and waits until it reports the stack up (or dies). */
async function detach(stack: Stack, instance: string, interval: number): Promise<number> {
  const paths = instancePaths(instance);
  rmSync(paths.readyFile, { force: true });
  const log = openSync(paths.simLog, 'w');
  const child = spawn(
    process.execPath,
    [SIM_CLI, 'up', stack.dir, '--name', instance, '--interval', String(interval), '--background'],
    { detached: true, stdio: ['ignore', log, log] },
  );
  closeSync(log);
  let exited = false;
  child.once('exit', () => {
    exited = true;
  });
  const deadline = Date.now() + 180_000;
  while (!existsSync(paths.readyFile)) {
    if (exited || Date.now() > deadline) {
      process.stderr.write(readFileSync(paths.simLog, 'utf8'));
      progress(`up --detach: the background pvx-sim ${exited ? 'exited' : 'did not come up'}`);
      if (!exited) child.kill('SIGTERM');
      return 1;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  child.unref();
  progress(`up: '${instance}' runs in the background (pid ${child.pid}, log ${paths.simLog})`);
  progress(`pv-ctrl: ${paths.ctrlSocket}; pv-xconnect status: ${paths.statusSocket}`);
  progress(`stop it with: pvx-sim down ${instance}`);
  return 0;
}

/** Instances known on this host: state folders and labelled containers. */
async function instances(runtime: DockerRuntime): Promise<string[]> {
  const names = new Set((await runtime.list()).map((container) => container.instance));
  if (existsSync(STATE_ROOT)) {
    for (const entry of readdirSync(STATE_ROOT, { withFileTypes: true })) {
      if (entry.isDirectory()) names.add(entry.name);
    }
  }
  return [...names].filter(Boolean).sort();
}

async function down(instance: string | undefined, keepImages: boolean): Promise<number> {
  const { DockerRuntime } = await import('./runtime.js');
  const { processRunning, removeInstanceContainers, runningOwner } = await import('./simulator.js');
  const runtime = await DockerRuntime.connect();
  const targets = instance === undefined ? await instances(runtime) : [instance];
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
  let name = instance;
  if (name === undefined) {
    const running = existsSync(STATE_ROOT)
      ? readdirSync(STATE_ROOT).filter((entry) => existsSync(instancePaths(entry).statusSocket))
      : [];
    if (running.length !== 1) {
      progress(running.length === 0 ? 'status: no stack is up' : `status: which one? ${running.join(', ')}`);
      return 1;
    }
    name = running[0] as string;
  }
  const links = await getJson<LinkStatus[]>(instancePaths(name).statusSocket, '/links');
  process.stdout.write(json ? `${JSON.stringify(links, null, 2)}\n` : linkTable(links));
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: Error) => {
    if (error instanceof UsageError) {
      process.stderr.write(`pvx-sim: ${error.message}\n\n${USAGE}`);
      process.exit(2);
    }
    process.stderr.write(`pvx-sim: ${error.message}\n`);
    process.exit(1);
  },
);
