// The mock pv-ctrl's endpoints and shapes, driven by pvcontrol (the tool containers use), and the supervisor
// that respawns the managed daemon unless it was stopped. No Docker here: the backend is a stand-in.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOOLS_DIR } from '../../sim/paths.js';
import type { GraphEntry } from '../../sim/pv-ctrl/graph-builder.js';
import {
  type ContainerAction,
  type ContainerStatus,
  CtrlError,
  MockCtrl,
} from '../../sim/pv-ctrl/mock-ctrl.js';
import { Supervisor } from '../../sim/supervisor.js';
import { unixRequest } from '../../sim/unix-http.js';
import { eventually, PATIENCE_MS } from '../../testkit/mesh.js';

const PVCONTROL = join(TOOLS_DIR, 'pvcontrol');
const RESPAWN_DELAY_MS = 10;

let work: string;
let ctrl: MockCtrl;
let daemon: Supervisor;
const actions: Array<[string, ContainerAction]> = [];
const containers: ContainerStatus[] = [
  { name: 'provider', group: 'app', status: 'STARTED', restart_policy: 'container', roles: [] },
  { name: 'admin', group: 'platform', status: 'STARTED', restart_policy: 'system', roles: ['mgmt'] },
];
const graph: GraphEntry[] = [
  {
    consumer: 'admin',
    consumer_pid: 7,
    provider: 'provider',
    provider_pid: 8,
    name: 'raw-unix',
    type: 'unix',
    role: 'any',
    interface: 'unix',
    target: '/run/pv/services/raw-unix.sock',
    socket: '/run/example/raw.sock',
  },
];

function pvcontrol(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('busybox', ['sh', PVCONTROL, '-s', ctrl.socketPath, ...args], (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-mock-ctrl-'));
  daemon = new Supervisor({
    name: 'pv-xconnect',
    command: 'sleep',
    args: ['1000'],
    logFile: join(work, 'daemon.log'),
    respawnDelayMs: RESPAWN_DELAY_MS,
  });
  ctrl = new MockCtrl(join(work, 'pv-ctrl'), {
    graph: async () => graph,
    containers: async () => containers,
    containerAction: async (name, action) => {
      if (name === 'admin') throw new CtrlError(409, "container 'admin' has restart_policy 'system'");
      actions.push([name, action]);
    },
    daemons: () => [daemon.state()],
    daemonAction: async (_name, action) => (action === 'stop' ? daemon.stop() : daemon.start()),
  });
  await ctrl.start();
  daemon.start();
});

afterAll(async () => {
  await daemon?.stop();
  await ctrl?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('mock pv-ctrl through pvcontrol', () => {
  it('answers 500 "State not loaded yet" for the graph until ready, then the graph', async () => {
    const booting = await pvcontrol('graph', 'ls');
    expect(booting.code).toBe(1);
    expect(JSON.parse(booting.stdout)).toEqual({ Error: 'State not loaded yet' });
    expect(booting.stderr).toContain('HTTP 500');
    ctrl.ready = true;
    const ready = await pvcontrol('graph', 'ls');
    expect(ready.code).toBe(0);
    expect(JSON.parse(ready.stdout)).toEqual(graph);
  });

  it('lists containers and one container', async () => {
    expect(JSON.parse((await pvcontrol('containers', 'ls')).stdout)).toEqual(containers);
    const one = await unixRequest(ctrl.socketPath, 'GET', '/containers/admin');
    expect(JSON.parse(one.body)).toEqual(containers[1]);
  });

  it('passes start/stop/restart to the backend; refusals and unknown names are {"Error"} answers', async () => {
    expect((await pvcontrol('containers', 'restart', 'provider')).code).toBe(0);
    expect((await pvcontrol('containers', 'stop', 'provider')).code).toBe(0);
    expect(actions).toEqual([
      ['provider', 'restart'],
      ['provider', 'stop'],
    ]);
    const refused = await pvcontrol('containers', 'restart', 'admin');
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout).Error).toContain('restart_policy');
    const unknown = await unixRequest(ctrl.socketPath, 'PUT', '/containers/ghost', '{"action":"stop"}');
    expect(unknown.status).toBe(404);
    expect(JSON.parse(unknown.body)).toEqual({ Error: "container 'ghost' not found" });
  });

  it('rejects a bad body, a bad action and a wrong method', async () => {
    expect((await unixRequest(ctrl.socketPath, 'PUT', '/containers/provider', 'stop')).status).toBe(400);
    const bad = await unixRequest(ctrl.socketPath, 'PUT', '/containers/provider', '{"action":"explode"}');
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.body).Error).toBe('action must be one of start, stop, restart');
    expect((await unixRequest(ctrl.socketPath, 'DELETE', '/containers/provider')).status).toBe(405);
    expect((await unixRequest(ctrl.socketPath, 'GET', '/nothing')).status).toBe(404);
  });

  it('pvcontrol rejects unknown commands with usage (exit 2)', async () => {
    const result = await pvcontrol('containers', 'explode', 'provider');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown command');
  });
});

describe('daemon supervision', () => {
  it('respawns the daemon when it dies', async () => {
    const first = daemon.state().pid;
    expect(first).toBeGreaterThan(0);
    process.kill(first, 'SIGKILL');
    await eventually(
      () => daemon.state().pid > 0 && daemon.state().pid !== first,
      PATIENCE_MS,
      'the respawn',
    );
    const listed = JSON.parse((await pvcontrol('daemons', 'ls')).stdout);
    expect(listed).toEqual([{ name: 'pv-xconnect', pid: daemon.state().pid, respawn: true }]);
  });

  it('daemons stop kills it for good; daemons start brings it back', async () => {
    const before = daemon.state().pid;
    const stopped = await pvcontrol('daemons', 'stop', 'pv-xconnect');
    expect(JSON.parse(stopped.stdout)).toEqual({ name: 'pv-xconnect', pid: 0, respawn: false });
    expect(() => process.kill(before, 0)).toThrow();
    // Timers fire in the order they expire: a respawn armed at the exit would have run before this one.
    await new Promise((resolve) => setTimeout(resolve, RESPAWN_DELAY_MS * 10));
    expect(daemon.state().pid).toBe(0);
    const started = JSON.parse((await pvcontrol('daemons', 'start', 'pv-xconnect')).stdout);
    expect(started.respawn).toBe(true);
    expect(started.pid).toBeGreaterThan(0);
    const unknown = await pvcontrol('daemons', 'stop', 'dbus-daemon');
    expect(unknown.code).toBe(1);
    expect(JSON.parse(unknown.stdout)).toEqual({ Error: "daemon 'dbus-daemon' not found" });
  });
});
