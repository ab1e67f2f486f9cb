// One running stack instance: its containers (Docker), the mock pv-ctrl serving their graph and lifecycle, the
// real pv-xconnect (and, when the stack turns it on, the hosted system bus) supervised as children.
// `Simulator.up` brings it all up; `down` takes it all away.
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CheckResult, runCheck } from './check-runner.js';
import { EventLog } from './events.js';
import { DAEMON_CLI, type InstancePaths, instancePaths, PACKAGE_ROOT, TOOLS_DIR } from './paths.js';
import { allowsRole, buildGraph, type GraphEntry, NEVER_STARTED } from './pv-ctrl/graph-builder.js';
import { busConfig, busPasswd, busPolicy, HOSTED_BUS_DAEMON } from './pv-ctrl/hosted-bus.js';
import {
  type ContainerStatus,
  type CtrlBackend,
  CtrlError,
  type GroupStatus,
  MockCtrl,
} from './pv-ctrl/mock-ctrl.js';
import {
  type ContainerAction,
  GROUPS,
  groupStatus,
  type PlatformStatus,
  planAction,
} from './pv-ctrl/platforms.js';
import { type ContainerPlan, DockerRuntime, type ExecResult, TOOLS_MOUNT } from './runtime.js';
import { type Check, PROGRAM, type Stack, type StackContainer } from './stack.js';
import { type DaemonState, Supervisor } from './supervisor.js';
import { getJson } from './unix-http.js';

export const DAEMON_NAME = 'pv-xconnect';
/** Listed by upstream's `/daemons` on every device, running only on embedded ones: here never. */
const HARDWARE_RNG_DAEMON = 'hwrngd';
const BASE_ETC = join(PACKAGE_ROOT, 'sim', 'base-etc');
const HOST_ALTERNATIVES = '/etc/alternatives';
/** How long the hosted bus may take to create its socket. */
const BUS_START_MS = 10_000;

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
  bytes?: { toProvider: number; toConsumer: number };
  /** Refusals by policy, when the daemon counts them. */
  denied?: number;
}

interface ContainerState {
  spec: StackContainer;
  id: string | null;
  status: PlatformStatus;
  /** Last init pid seen; kept when the container stops, as upstream's pv-ctrl reports it. */
  lastPid: number;
  userStopped: boolean;
  /** Lifecycle actions run one after the other, after pv-ctrl has answered. */
  work: Promise<void>;
  busy: number;
}

/** An error that names the container and the step that failed. */
export class SimError extends Error {
  override name = 'SimError';
}

export class Simulator implements CtrlBackend {
  readonly paths: InstancePaths;
  readonly events = new EventLog();
  private readonly states = new Map<string, ContainerState>();
  private readonly ctrl: MockCtrl;
  readonly daemon: Supervisor;
  /** The hosted system bus (`pv-dbus`), when the stack turns it on. */
  readonly bus: Supervisor | null;
  private readonly rngRespawn = { respawn: true };
  private downing: Promise<void> | null = null;
  private refreshing: Promise<void> | null = null;

  private constructor(
    readonly stack: Stack,
    readonly instance: string,
    private readonly runtime: DockerRuntime,
    readonly intervalSeconds: number,
  ) {
    this.paths = instancePaths(instance);
    for (const spec of stack.containers) {
      this.states.set(spec.name, {
        spec,
        id: null,
        status: 'INSTALLED',
        lastPid: NEVER_STARTED,
        userStopped: false,
        work: Promise.resolve(),
        busy: 0,
      });
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
    this.bus = stack.hostedBus && hostedBusDaemon(this.paths);
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
    for (const dir of [paths.root, join(paths.ctrlSocket, '..'), join(paths.statusSocket, '..')])
      mkdirSync(dir, { recursive: true });
    writeFileSync(paths.pidFile, `${process.pid}\n`);

    progress('image: checking pvx-sim base image');
    const image = await this.runtime.ensureImage();
    progress(`image: ${image === 'built' ? 'built' : 'present'}`);

    await this.ctrl.start();
    for (const { spec } of this.states.values()) {
      const dir = paths.containerCtrlDir(spec.name);
      mkdirSync(dir, { recursive: true });
      await this.ctrl.listen(join(dir, 'pv-ctrl'), { name: spec.name, mgmt: spec.settings.mgmt });
    }
    progress(`pv-ctrl: listening on ${paths.ctrlSocket} (and one socket per container)`);

    if (this.bus) await this.startHostedBus(progress);

    await Promise.all([...this.states.values()].map((state) => this.startContainer(state, progress)));
    this.ctrl.ready = true;
    this.daemon.start();
    progress(`${DAEMON_NAME}: started (interval ${this.intervalSeconds} s, log ${paths.daemonLog})`);
  }

  private async startContainer(state: ContainerState, progress: (message: string) => void): Promise<void> {
    const name = state.spec.name;
    try {
      state.status = 'STARTING';
      state.id = await this.runtime.start(this.plan(state.spec));
    } catch (error) {
      throw new SimError(`container '${name}': start: ${(error as Error).message}`);
    }
    state.status = 'STARTED';
    state.lastPid = await this.runtime.pid(state.id);
    progress(`container ${name}: started (pid ${state.lastPid})`);
  }

  /** Writes the bus's configuration, policy and passwd, starts it, and waits for its socket. */
  private async startHostedBus(progress: (message: string) => void): Promise<void> {
    const hosted = this.stack.hostedBus;
    if (!hosted || !this.bus) return;
    const dir = this.paths.hostedBusDir;
    mkdirSync(join(dir, 'policy.d'), { recursive: true });
    writeFileSync(join(dir, 'system.conf'), busConfig(join(dir, 'system_bus_socket'), join(dir, 'policy.d')));
    writeFileSync(join(dir, 'policy.d', 'pv-generated.conf'), busPolicy(hosted.names, hosted.uids));
    writeFileSync(join(dir, 'passwd'), busPasswd(readFileSync('/etc/passwd', 'utf8'), hosted.uids));
    this.bus.start();
    const deadline = Date.now() + BUS_START_MS;
    while (!existsSync(join(dir, 'system_bus_socket'))) {
      if (Date.now() > deadline) {
        throw new SimError(
          `${HOSTED_BUS_DAEMON}: no bus socket within ${BUS_START_MS / 1000} s (see ${this.paths.hostedBusLog})`,
        );
      }
      await sleep(50);
    }
    progress(`${HOSTED_BUS_DAEMON}: hosted system bus on ${join(dir, 'system_bus_socket')}`);
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
    return {
      instance: this.instance,
      name: spec.name,
      command: [`/app/${PROGRAM}`],
      mounts: [
        { source: '/usr', target: '/usr', readOnly: true },
        { source: etc, target: '/etc', readOnly: false },
        { source: spec.dir, target: '/app', readOnly: true },
        { source: TOOLS_DIR, target: TOOLS_MOUNT, readOnly: true },
        { source: this.paths.containerCtrlDir(spec.name), target: '/pantavisor', readOnly: true },
      ],
      env: { PVX_CONTAINER: spec.name, HOME: '/root' },
    };
  }

  // --- what the mock pv-ctrl serves -------------------------------------------------------------------------

  /** The graph with live pids (a stopped container keeps its last pid, as upstream's pv-ctrl reports it). */
  async graph(): Promise<GraphEntry[]> {
    await this.refresh();
    const pids = new Map([...this.states].map(([name, state]) => [name, state.lastPid]));
    const hosted = this.stack.hostedBus;
    const bus = hosted && {
      socket: join(this.paths.hostedBusDir, 'system_bus_socket'),
      uidOf: (role: string) => hosted.uids.get(role) ?? -1,
    };
    return buildGraph(this.stack.containers, pids, bus).links;
  }

  async containers(): Promise<ContainerStatus[]> {
    await this.refresh();
    return [...this.states.values()].map(({ spec, status, userStopped }) => {
      const { group, statusGoal, restartPolicy, roles } = spec.settings;
      const entry: ContainerStatus = {
        name: spec.name,
        group,
        status,
        status_goal: statusGoal,
        restart_policy: restartPolicy,
        roles,
      };
      if (restartPolicy === 'container') entry.user_stopped = userStopped ? 'true' : 'false';
      return entry;
    });
  }

  async groups(): Promise<GroupStatus[]> {
    await this.refresh();
    return Object.entries(GROUPS).map(([name, defaults]) => ({
      name,
      status_goal: defaults.statusGoal,
      restart_policy: defaults.restartPolicy,
      status: groupStatus(
        [...this.states.values()]
          .filter((state) => state.spec.settings.group === name)
          .map((state) => ({ status: state.status, statusGoal: state.spec.settings.statusGoal })),
      ),
    }));
  }

  checkControllable(name: string): void {
    const state = this.states.get(name);
    if (!state) throw new CtrlError(404, 'Container not found');
    if (state.spec.settings.restartPolicy !== 'container') {
      throw new CtrlError(403, "Container has restart_policy 'system' and cannot be controlled via API");
    }
  }

  containerAction(name: string, action: ContainerAction): void {
    this.checkControllable(name);
    const state = this.states.get(name) as ContainerState;
    const plan = planAction(state.status, state.userStopped, action);
    if (typeof plan === 'object') throw new CtrlError(400, plan.refused);
    this.events.add('ctrl', `pv-ctrl: ${action} ${name}`);
    if (plan === 'none') return;
    if (plan === 'mark-user-stopped') {
      state.userStopped = true;
      return;
    }
    // Answered now, acted on after, as upstream's state machine does; the status shows the way.
    state.userStopped = plan === 'stop';
    state.status = plan === 'start' ? 'INSTALLED' : 'STOPPING';
    state.busy += 1;
    state.work = state.work
      .then(() => this.carryOut(state, plan))
      .catch((error: Error) => {
        state.status = 'STOPPED';
        this.events.add('container', `${name}: ${action} failed: ${error.message}`, true);
      })
      .finally(() => {
        state.busy -= 1;
      });
  }

  private async carryOut(state: ContainerState, plan: 'stop' | 'start' | 'restart'): Promise<void> {
    const id = state.id as string;
    const name = state.spec.name;
    if (plan !== 'start') {
      state.status = 'STOPPING';
      await this.runtime.stop(id);
      state.status = 'STOPPED';
      this.events.add('container', `${name} stopped`);
      if (plan === 'stop') return;
    }
    state.status = 'STARTING';
    await this.runtime.startExisting(id);
    state.lastPid = await this.runtime.pid(id);
    state.status = 'STARTED';
    this.events.add(
      'container',
      `${name} ${plan === 'restart' ? 'restarted' : 'started'} (pid ${state.lastPid})`,
    );
  }

  daemons(): DaemonState[] {
    const rng = { name: HARDWARE_RNG_DAEMON, pid: 0, respawn: this.rngRespawn.respawn };
    return [rng, this.daemon.state(), ...(this.bus ? [this.bus.state()] : [])];
  }

  daemonAction(name: string, action: string | null): void {
    const supervisor = [this.daemon, this.bus].find((candidate) => candidate?.name === name);
    if (action !== 'start' && action !== 'stop') {
      this.events.add(
        'ctrl',
        `pv-ctrl: daemon ${name}: action ${JSON.stringify(action)} ignored, as upstream does`,
      );
      return;
    }
    this.events.add('daemon', `pv-ctrl: ${action} ${name}`);
    if (!supervisor) {
      // hwrngd: upstream flips its respawn flag; it never runs outside embedded and standalone modes.
      this.rngRespawn.respawn = action === 'start';
      return;
    }
    if (action === 'start') supervisor.start();
    else void supervisor.stop();
  }

  signal(caller: string, type: string): void {
    const state = this.states.get(caller);
    if (type !== 'ready' || !state || state.spec.settings.statusGoal !== 'READY') {
      throw new CtrlError(500, 'Signal not expected from this platform');
    }
    if (state.status === 'STARTED') state.status = 'READY';
  }

  /** Reads the containers' state from Docker (one read at a time, shared by concurrent callers). */
  private refresh(): Promise<void> {
    this.refreshing ??= this.readStates().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** A container whose program exited is STOPPED, its pid kept; one that runs again is STARTED. */
  private async readStates(): Promise<void> {
    await Promise.all(
      [...this.states.values()].map(async (state) => {
        if (!state.id || state.busy > 0) return;
        const pid = await this.runtime.pid(state.id).catch(() => 0);
        if (pid > 0) {
          if (pid !== state.lastPid && state.status !== 'STOPPED') {
            this.events.add('container', `${state.spec.name} restarted (pid ${pid})`);
          }
          state.lastPid = pid;
          if (state.status !== 'READY') state.status = 'STARTED';
        } else if (state.status !== 'STOPPED') {
          state.status = 'STOPPED';
          this.events.add('container', `${state.spec.name} stopped: its program exited`, true);
        }
      }),
    );
  }

  // --- using the stack ----------------------------------------------------------------------------------------

  private idOf(container: string, what: string): string {
    const id = this.states.get(container)?.id;
    if (!id)
      throw new SimError(
        `container '${container}': ${what}: no such container in stack '${this.stack.name}'`,
      );
    return id;
  }

  async exec(container: string, command: string, timeoutSeconds = 10): Promise<ExecResult> {
    return this.runtime.exec(this.idOf(container, 'exec'), command, timeoutSeconds);
  }

  /** What the container's program has printed (its console, upstream's console.log). */
  async console(container: string): Promise<string> {
    return this.runtime.logs(this.idOf(container, 'console'));
  }

  /** pv-xconnect's view of the links (empty while it is down). */
  async links(): Promise<LinkStatus[]> {
    return getJson<LinkStatus[]>(this.paths.statusSocket, '/links');
  }

  /** pv-xconnect's open file descriptors, or null when it does not run. */
  daemonFds(): number | null {
    const pid = this.daemon.state().pid;
    if (pid <= 0) return null;
    try {
      return readdirSync(`/proc/${pid}/fd`).length;
    } catch {
      return null;
    }
  }

  /**
   * Polls until every link of the graph is active, but those their allow list refuses (they fail for good), or the
   * time is up; resolves with the last view.
   */
  async waitForLinks(timeoutMs: number): Promise<LinkStatus[]> {
    const expected = this.stack.graph.links.filter(allowsRole).length;
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
    const target = {
      exec: (check: Check, seconds: number) => this.exec(check.container, check.run ?? 'true', seconds),
      console: (container: string) => this.console(container),
      daemonFds: () => this.daemonFds(),
    };
    for (const check of this.stack.checks) {
      const result = await runCheck(check, target);
      results.push(result);
      onResult?.(result);
    }
    return results;
  }

  /** Stops pv-xconnect, the bus and the mock pv-ctrl, removes the containers and the instance's state. Idempotent. */
  down(): Promise<void> {
    this.downing ??= (async () => {
      this.ctrl.ready = false;
      await this.daemon.stop();
      await this.bus?.stop();
      await this.ctrl.stop();
      await removeInstanceContainers(this.runtime, this.instance);
      rmSync(this.paths.root, { recursive: true, force: true });
    })();
    return this.downing;
  }
}

/**
 * The hosted bus's dbus-daemon in a mount namespace of its own, where the generated passwd (every role's uid as
 * `pv-dbus-<role>`) is bind-mounted over /etc/passwd: dbus-daemon drops a connection whose uid it cannot resolve,
 * and the host's passwd has no role users. Its socket is in the instance folder, which the namespace shares
 * with the host, so pv-xconnect dials it as a host path (`_pv_`).
 */
function hostedBusDaemon(paths: InstancePaths): Supervisor {
  const dir = paths.hostedBusDir;
  const script =
    'mount --bind "$1/passwd" /etc/passwd && ' +
    'exec dbus-daemon --nofork --nopidfile --config-file="$1/system.conf"';
  return new Supervisor({
    name: HOSTED_BUS_DAEMON,
    command: 'unshare',
    args: ['--mount', '--propagation', 'private', 'sh', '-c', script, HOSTED_BUS_DAEMON, dir],
    logFile: paths.hostedBusLog,
  });
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
