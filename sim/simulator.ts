// One running stack instance: its containers (Docker), the mock pv-ctrl serving their graph and lifecycle, and
// the real pv-xconnect supervised as a child. `Simulator.up` brings it all up; `down` takes it all away.
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CheckResult, runCheck } from './check-runner.js';
import { DAEMON_CLI, type InstancePaths, instancePaths, PACKAGE_ROOT, TOOLS_DIR } from './paths.js';
import { buildGraph, type GraphEntry, NEVER_STARTED } from './pv-ctrl/graph-builder.js';
import {
  type ContainerAction,
  type ContainerStatus,
  type CtrlBackend,
  CtrlError,
  MockCtrl,
} from './pv-ctrl/mock-ctrl.js';
import { type ContainerPlan, DockerRuntime, type ExecResult, TOOLS_MOUNT } from './runtime.js';
import { type Check, PROGRAM, type Stack, type StackContainer } from './stack.js';
import { type DaemonState, Supervisor } from './supervisor.js';
import { getJson } from './unix-http.js';

export const DAEMON_NAME = 'pv-xconnect';
const BASE_ETC = join(PACKAGE_ROOT, 'sim', 'base-etc');
const HOST_ALTERNATIVES = '/etc/alternatives';

export interface SimulatorOptions {
  /** Instance name (container names, labels, state folder); default the stack's name. */
  instance?: string;
  /** pv-xconnect's poll interval in seconds; default 1. */
  intervalSeconds?: number;
  onProgress?: (message: string) => void;
}

/** One entry of pv-xconnect's `GET /links` (the fields the simulator shows). */
export interface LinkStatus {
  consumer: string;
  name: string;
  target: string;
  type: string;
  role: string;
  provider: string;
  state: 'pending' | 'active' | 'failed';
  error: string | null;
  connections: { active: number; total: number };
}

interface ContainerState {
  spec: StackContainer;
  id: string | null;
  status: string;
  /** Last init pid seen; kept when the container stops, as upstream's pv-ctrl reports it. */
  lastPid: number;
}

/** An error that names the container and the step that failed. */
export class SimError extends Error {
  override name = 'SimError';
}

export class Simulator implements CtrlBackend {
  readonly paths: InstancePaths;
  private readonly states = new Map<string, ContainerState>();
  private readonly ctrl: MockCtrl;
  readonly daemon: Supervisor;
  private downing: Promise<void> | null = null;

  private constructor(
    readonly stack: Stack,
    readonly instance: string,
    private readonly runtime: DockerRuntime,
    private readonly intervalSeconds: number,
  ) {
    this.paths = instancePaths(instance);
    for (const spec of stack.containers) {
      this.states.set(spec.name, { spec, id: null, status: 'INSTALLED', lastPid: NEVER_STARTED });
    }
    this.ctrl = new MockCtrl(this.paths.ctrlSocket, this);
    this.daemon = new Supervisor({
      name: DAEMON_NAME,
      command: process.execPath,
      args: [
        DAEMON_CLI,
        '--ctrl-socket',
        this.paths.ctrlSocket,
        '--status-socket',
        this.paths.statusSocket,
        '--interval',
        String(intervalSeconds),
      ],
      logFile: this.paths.daemonLog,
    });
  }

  /** Builds the image if needed, starts the containers, the mock pv-ctrl and pv-xconnect. */
  static async up(stack: Stack, options: SimulatorOptions = {}): Promise<Simulator> {
    if (stack.problems.length > 0) {
      throw new SimError(`stack '${stack.name}' is invalid:\n  ${stack.problems.join('\n  ')}`);
    }
    if (!existsSync(DAEMON_CLI)) throw new SimError(`${DAEMON_CLI} is missing: build first (npx tsc -p .)`);
    const progress = options.onProgress ?? (() => {});
    const instance = options.instance ?? stack.name;
    const runtime = await DockerRuntime.connect();
    if ((await runtime.list(instance)).length > 0 || runningOwner(instancePaths(instance).pidFile) > 0) {
      throw new SimError(`stack instance '${instance}' is already up: run 'pvx-sim down ${instance}' first`);
    }
    const sim = new Simulator(stack, instance, runtime, options.intervalSeconds ?? 1);
    try {
      await sim.bringUp(progress);
    } catch (error) {
      await sim.down();
      throw error;
    }
    return sim;
  }

  private async bringUp(progress: (message: string) => void): Promise<void> {
    const paths = this.paths;
    rmSync(paths.root, { recursive: true, force: true });
    for (const dir of [paths.root, paths.ctrlDir, join(paths.statusSocket, '..')])
      mkdirSync(dir, { recursive: true });
    writeFileSync(paths.pidFile, `${process.pid}\n`);

    progress('image: checking pvx-sim base image');
    const image = await this.runtime.ensureImage();
    progress(`image: ${image === 'built' ? 'built' : 'present'}`);

    await this.ctrl.start();
    progress(`pv-ctrl: listening on ${paths.ctrlSocket}`);

    await Promise.all(
      [...this.states.values()].map(async (state) => {
        const name = state.spec.name;
        const plan = this.plan(state.spec);
        try {
          state.id = await this.runtime.start(plan);
        } catch (error) {
          throw new SimError(`container '${name}': start: ${(error as Error).message}`);
        }
        state.status = 'STARTED';
        state.lastPid = await this.runtime.pid(state.id);
        progress(`container ${name}: started (pid ${state.lastPid})`);
      }),
    );
    this.ctrl.ready = true;
    this.daemon.start();
    progress(`${DAEMON_NAME}: started (interval ${this.intervalSeconds} s, log ${paths.daemonLog})`);
  }

  /** The container's own /etc: the simulator's base files overlaid with the stack's `etc/`; host tools' links. */
  private plan(spec: StackContainer): ContainerPlan {
    const etc = this.paths.containerEtc(spec.name);
    mkdirSync(etc, { recursive: true });
    cpSync(BASE_ETC, etc, { recursive: true });
    // Debian reaches many host tools through /etc/alternatives (nc, awk…): keep those links working.
    if (existsSync(HOST_ALTERNATIVES)) {
      cpSync(HOST_ALTERNATIVES, join(etc, 'alternatives'), { recursive: true, verbatimSymlinks: true });
    }
    if (existsSync(join(spec.dir, 'etc'))) cpSync(join(spec.dir, 'etc'), etc, { recursive: true });
    writeFileSync(join(etc, 'hostname'), `${spec.name}\n`);
    writeFileSync(join(etc, 'machine-id'), `${randomBytes(16).toString('hex')}\n`);
    const mounts = [
      { source: '/usr', target: '/usr', readOnly: true },
      { source: etc, target: '/etc', readOnly: false },
      { source: spec.dir, target: '/app', readOnly: true },
      { source: TOOLS_DIR, target: TOOLS_MOUNT, readOnly: true },
    ];
    if (spec.mgmt) mounts.push({ source: this.paths.ctrlDir, target: '/pantavisor', readOnly: true });
    return {
      instance: this.instance,
      name: spec.name,
      command: [`/app/${PROGRAM}`],
      mounts,
      env: { PVX_CONTAINER: spec.name, HOME: '/root' },
    };
  }

  // --- what the mock pv-ctrl serves -------------------------------------------------------------------------

  async graph(): Promise<GraphEntry[]> {
    await this.refresh();
    const pids = new Map([...this.states].map(([name, state]) => [name, state.lastPid]));
    return buildGraph(this.stack.containers, pids).links;
  }

  async containers(): Promise<ContainerStatus[]> {
    await this.refresh();
    return [...this.states.values()].map(({ spec, status }) => ({
      name: spec.name,
      group: spec.run.group ?? (spec.mgmt ? 'platform' : 'app'),
      status,
      restart_policy: spec.run.restartPolicy ?? 'container',
      roles: spec.run.roles,
    }));
  }

  async containerAction(name: string, action: ContainerAction): Promise<void> {
    const state = this.states.get(name);
    if (!state?.id) throw new CtrlError(404, `container '${name}' not found`);
    const policy = state.spec.run.restartPolicy ?? 'container';
    if (policy !== 'container') {
      throw new CtrlError(409, `container '${name}' has restart_policy '${policy}': it cannot be controlled`);
    }
    const id = state.id;
    try {
      if (action === 'stop') {
        state.status = 'STOPPING';
        await this.runtime.stop(id);
        state.status = 'STOPPED';
        return;
      }
      state.status = 'STARTING';
      await (action === 'start' ? this.runtime.startExisting(id) : this.runtime.restart(id));
      state.lastPid = await this.runtime.pid(id);
      state.status = 'STARTED';
    } catch (error) {
      await this.refresh();
      throw new CtrlError(500, `container '${name}': ${action}: ${(error as Error).message}`);
    }
  }

  daemons(): DaemonState[] {
    return [this.daemon.state()];
  }

  async daemonAction(name: string, action: 'start' | 'stop'): Promise<void> {
    if (name !== DAEMON_NAME) throw new CtrlError(404, `daemon '${name}' not found`);
    if (action === 'stop') await this.daemon.stop();
    else this.daemon.start();
  }

  /** Reads the containers' state from Docker: a container whose program exited is STOPPED, pid kept. */
  private async refresh(): Promise<void> {
    await Promise.all(
      [...this.states.values()].map(async (state) => {
        if (!state.id || state.status === 'STARTING' || state.status === 'STOPPING') return;
        const pid = await this.runtime.pid(state.id).catch(() => 0);
        if (pid > 0) {
          state.lastPid = pid;
          state.status = 'STARTED';
        } else {
          state.status = 'STOPPED';
        }
      }),
    );
  }

  // --- using the stack ----------------------------------------------------------------------------------------

  async exec(container: string, command: string, timeoutSeconds = 10): Promise<ExecResult> {
    const id = this.states.get(container)?.id;
    if (!id)
      throw new SimError(`container '${container}': exec: no such container in stack '${this.stack.name}'`);
    return this.runtime.exec(id, command, timeoutSeconds);
  }

  /** pv-xconnect's view of the links (empty while it is down). */
  async links(): Promise<LinkStatus[]> {
    return getJson<LinkStatus[]>(this.paths.statusSocket, '/links');
  }

  /** Polls until every link of the graph is active, or the time is up; resolves with the last view. */
  async waitForLinks(timeoutMs: number): Promise<LinkStatus[]> {
    const expected = this.stack.graph.links.length;
    const deadline = Date.now() + timeoutMs;
    let links: LinkStatus[] = [];
    for (;;) {
      links = await this.links().catch(() => links);
      const active = links.filter((link) => link.state === 'active').length;
      if (active >= expected || Date.now() >= deadline) return links;
      await sleep(200);
    }
  }

  /** Runs the stack's checks one after the other (each retried within its timeout). */
  async runChecks(onResult?: (result: CheckResult) => void): Promise<CheckResult[]> {
    const results: CheckResult[] = [];
    for (const check of this.stack.checks) {
      const result = await runCheck(check, (c: Check, seconds: number) =>
        this.exec(c.container, c.run, seconds),
      );
      results.push(result);
      onResult?.(result);
    }
    return results;
  }

  /** Stops pv-xconnect and the mock pv-ctrl, removes the containers and the instance's state. Idempotent. */
  down(): Promise<void> {
    this.downing ??= (async () => {
      this.ctrl.ready = false;
      await this.daemon.stop();
      await this.ctrl.stop();
      await removeInstanceContainers(this.runtime, this.instance);
      rmSync(this.paths.root, { recursive: true, force: true });
    })();
    return this.downing;
  }
}

export async function removeInstanceContainers(runtime: DockerRuntime, instance?: string): Promise<number> {
  const containers = await runtime.list(instance);
  await Promise.all(containers.map((container) => runtime.remove(container.id)));
  return containers.length;
}

/** The pid of the pvx-sim process recorded in `pidFile` if it still runs (not this process), else 0. */
export function runningOwner(pidFile: string): number {
  if (!existsSync(pidFile)) return 0;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && pid !== process.pid && processRunning(pid) ? pid : 0;
}

/** Whether `pid` is a live process: a zombie (exited, not yet reaped by its parent) is not. */
export function processRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // The state follows the parenthesised command name: `pid (comm) S …`.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
