// The mock pv-ctrl's endpoints, shapes, status codes and messages (upstream's), driven by pvcontrol (the tool
// containers use) and by raw HTTP, and the supervisor that respawns the managed daemon unless it was stopped.
// No Docker here: the backend is a stand-in that records what it is asked.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOOLS_DIR } from '../../sim/paths.js';
import type { GraphEntry } from '../../sim/pv-ctrl/graph-builder.js';
import { type ContainerStatus, CtrlError, MockCtrl } from '../../sim/pv-ctrl/mock-ctrl.js';
import type { ContainerAction } from '../../sim/pv-ctrl/platforms.js';
import { Supervisor } from '../../sim/supervisor.js';
import { unixRequest } from '../../sim/unix-http.js';
import { eventually, PATIENCE_MS } from '../../testkit/mesh.js';

const PVCONTROL = join(TOOLS_DIR, 'pvcontrol');

let work: string;
let ctrl: MockCtrl;
let appSocket: string;
let daemon: Supervisor;
let graphAnswer: number | null = null;
const actions: Array<[string, ContainerAction]> = [];
const daemonActions: Array<string | null> = [];
const signals: Array<[string, string, string | null]> = [];
const containers: ContainerStatus[] = [
  {
    name: 'provider',
    group: 'app',
    status: 'STARTED',
    status_goal: 'STARTED',
    restart_policy: 'container',
    roles: [],
    user_stopped: 'false',
  },
  {
    name: 'admin',
    group: 'platform',
    status: 'STARTED',
    status_goal: 'STARTED',
    restart_policy: 'system',
    roles: ['mgmt'],
  },
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

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function pvcontrol(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('busybox', ['sh', PVCONTROL, '-s', ctrl.socketPath, ...args], (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

const request = (method: string, path: string, body?: string, socket = ctrl.socketPath) =>
  unixRequest(socket, method, path, body);

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-mock-ctrl-'));
  daemon = new Supervisor({
    name: 'pv-xconnect',
    command: 'sleep',
    args: ['1000'],
    logFile: join(work, 'daemon.log'),
    respawnDelayMs: 10,
  });
  ctrl = new MockCtrl(join(work, 'pv-ctrl'), {
    graph: async () => {
      if (graphAnswer !== null) throw new CtrlError(graphAnswer, 'Service Unavailable');
      return graph;
    },
    containers: async () => containers,
    groups: async () => [
      { name: 'app', status_goal: 'STARTED', restart_policy: 'container', status: 'READY' },
    ],
    checkControllable: (name) => {
      const container = containers.find((entry) => entry.name === name);
      if (!container) throw new CtrlError(404, 'Container not found');
      if (container.restart_policy !== 'container') {
        throw new CtrlError(403, "Container has restart_policy 'system' and cannot be controlled via API");
      }
    },
    containerAction: (name, action) => {
      actions.push([name, action]);
    },
    daemons: () => [daemon.state()],
    daemonAction: (_name, action) => {
      daemonActions.push(action);
      if (action === 'stop') void daemon.stop();
      if (action === 'start') daemon.start();
    },
    signal: (caller, type, payload) => {
      signals.push([caller, type, payload]);
      if (type !== 'ready') throw new CtrlError(500, 'Signal not expected from this platform');
    },
  });
  await ctrl.start();
  appSocket = join(work, 'app-pv-ctrl');
  await ctrl.listen(appSocket, { name: 'app', mgmt: false });
  daemon.start();
});

afterAll(async () => {
  await daemon?.stop();
  await ctrl?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('mock pv-ctrl through pvcontrol', () => {
  it('answers 500 "State not loaded yet" until ready (pvcontrol: body on stderr, exit 255), then the graph', async () => {
    const booting = await pvcontrol('graph', 'ls');
    expect(booting).toEqual({ code: 255, stdout: '', stderr: '{"Error":"State not loaded yet"}\n' });
    ctrl.ready = true;
    const ready = await pvcontrol('graph', 'ls');
    expect(ready.code).toBe(0);
    expect(ready.stdout).toBe(`${JSON.stringify(graph)}\n`);
  });

  it('a 503 makes pvcontrol exit 75', async () => {
    graphAnswer = 503;
    try {
      expect(await pvcontrol('graph', 'ls')).toMatchObject({ code: 75, stdout: '' });
    } finally {
      graphAnswer = null;
    }
  });

  it('lists containers and groups in upstream shapes', async () => {
    expect(JSON.parse((await pvcontrol('containers', 'ls')).stdout)).toEqual(containers);
    expect(JSON.parse((await pvcontrol('ls')).stdout)).toEqual(containers);
    expect(JSON.parse((await pvcontrol('groups', 'ls')).stdout)).toEqual([
      { name: 'app', status_goal: 'STARTED', restart_policy: 'container', status: 'READY' },
    ]);
  });

  it('container actions answer 200 with an empty body (pvcontrol prints an empty line) and reach the backend', async () => {
    expect(await pvcontrol('containers', 'restart', 'provider')).toEqual({
      code: 0,
      stdout: '\n',
      stderr: '',
    });
    expect(await pvcontrol('containers', 'stop', 'provider')).toEqual({ code: 0, stdout: '\n', stderr: '' });
    expect(actions).toEqual([
      ['provider', 'restart'],
      ['provider', 'stop'],
    ]);
    const raw = await request('PUT', '/containers/provider', '{"action":"start"}');
    expect([raw.status, raw.body, raw.headers['content-type']]).toEqual([200, '', 'application/json']);
  });

  it('refusals carry upstream status codes and messages', async () => {
    const refused = await pvcontrol('containers', 'restart', 'admin');
    expect(refused).toEqual({
      code: 255,
      stdout: '',
      stderr: '{"Error":"Container has restart_policy \'system\' and cannot be controlled via API"}\n',
    });
    const answers = [
      await request('PUT', '/containers/ghost', '{"action":"stop"}'),
      await request('PUT', '/containers/provider', 'stop'),
      await request('PUT', '/containers/provider', '{"action":"explode"}'),
      await request('PUT', '/containers/provider', ''),
      await request('PUT', '/containers/provider', `{"action":"stop","pad":"${'x'.repeat(1100)}"}`),
      await request('GET', '/containers/provider'),
      await request('DELETE', '/containers/provider'),
      await request('PUT', '/daemons/ghost', '{"action":"stop"}'),
      await request('GET', '/nothing?x=1'),
      await request('GET', '/steps'),
    ];
    expect(answers.map((answer) => [answer.status, answer.body])).toEqual([
      [404, '{"Error":"Container not found"}'],
      [400, '{"Error":"Invalid JSON"}'],
      [400, `{"Error":"Invalid action. Use 'start', 'stop', or 'restart'"}`],
      [400, `{"Error":"Missing 'action' field"}`],
      [507, '{"Error":"Not enough disk space available"}'],
      [400, '{"Error":"Method not supported for this endpoint"}'],
      [400, '{"Error":"Method not supported for this endpoint"}'],
      [404, '{"Error":"Daemon not found"}'],
      [400, '{"Error":"unknown endpoint: /nothing?x=1"}'],
      [400, '{"Error":"unknown endpoint: /steps (not simulated by pvx-sim)"}'],
    ]);
    expect(actions).toHaveLength(3);
    const patch = await request('PATCH', '/containers');
    expect(patch.status).toBe(501);
    expect(patch.headers['content-type']).toBe('text/html');
  });

  it('a request naming another Host than localhost is dropped unanswered', async () => {
    const socket = connect(ctrl.socketPath);
    socket.end('GET /containers HTTP/1.1\r\nHost: example.com\r\n\r\n');
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    await new Promise((resolve) => socket.on('close', resolve));
    expect(Buffer.concat(received).toString()).toBe('');
    expect((await request('GET', '/containers')).status).toBe(200);
  });

  it("a container without the mgmt role gets 403 from mgmt endpoints (in both of upstream's wordings)", async () => {
    const list = await request('GET', '/containers', undefined, appSocket);
    const action = await request('PUT', '/containers/provider', '{"action":"stop"}', appSocket);
    expect([list.status, list.body]).toEqual([403, '{"Error":"Request not sent from a mgmt platform"}']);
    expect([action.status, action.body]).toEqual([403, '{"Error":"Request not sent from mgmt platform"}']);
    expect(actions).toHaveLength(3);
  });

  it('signals are for every container, and the backend knows who sent them', async () => {
    const ready = await request('POST', '/signal', '{"type":"ready","payload":""}', appSocket);
    const alive = await request('POST', '/signal', '{"type":"alive","payload":""}', appSocket);
    const bad = await request('POST', '/signal', 'nonsense', appSocket);
    expect([ready.status, alive.status, alive.body]).toEqual([
      200,
      500,
      '{"Error":"Signal not expected from this platform"}',
    ]);
    expect([bad.status, bad.body]).toEqual([400, '{"Error":"Signal has bad format"}']);
    expect(signals).toEqual([
      ['app', 'ready', ''],
      ['app', 'alive', ''],
    ]);
  });

  it('pvcontrol names an unknown command, prints the usage and exits 1', async () => {
    const unknown = await pvcontrol('containers', 'explode', 'provider');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe(
      "pvcontrol: unknown containers command 'explode' (ls, start, stop, restart)\n",
    );
    expect(unknown.stdout).toContain('Usage: pvcontrol');
    const noun = await pvcontrol('frobnicate');
    expect([noun.code, noun.stderr]).toEqual([1, "pvcontrol: unknown command 'frobnicate'\n"]);
    const missing = await pvcontrol('containers', 'stop');
    expect([missing.code, missing.stderr]).toEqual([1, 'pvcontrol: containers stop: which container?\n']);
  });

  it('pvcontrol says when the socket is not there (exit 1)', async () => {
    const result = await new Promise<Run>((resolve) => {
      execFile(
        'busybox',
        ['sh', PVCONTROL, '-s', join(work, 'nothing'), 'graph', 'ls'],
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(result).toEqual({ code: 1, stdout: `ERROR: ${join(work, 'nothing')} not found\n`, stderr: '' });
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

  it('daemons stop kills it for good (pid -1, as upstream); start brings it back; restart is stop + start', async () => {
    const before = daemon.state().pid;
    expect(await pvcontrol('daemons', 'stop', 'pv-xconnect')).toEqual({ code: 0, stdout: '\n', stderr: '' });
    await eventually(() => daemon.state().pid === -1, PATIENCE_MS, 'the exit');
    expect(() => process.kill(before, 0)).toThrow();
    expect(JSON.parse((await pvcontrol('daemons', 'ls')).stdout)).toEqual([
      { name: 'pv-xconnect', pid: -1, respawn: false },
    ]);
    expect((await pvcontrol('daemons', 'start', 'pv-xconnect')).code).toBe(0);
    expect(daemon.state()).toMatchObject({ respawn: true });
    expect(daemon.state().pid).toBeGreaterThan(0);
    daemonActions.length = 0;
    expect((await pvcontrol('daemons', 'restart', 'pv-xconnect')).code).toBe(0);
    expect(daemonActions).toEqual(['stop', 'start']);
  });

  it('an unknown daemon action is answered 200 and does nothing, as upstream', async () => {
    const pid = daemon.state().pid;
    daemonActions.length = 0;
    const answer = await request('PUT', '/daemons/pv-xconnect', '{"action":"explode"}');
    expect([answer.status, answer.body]).toEqual([200, '']);
    expect(daemonActions).toEqual(['explode']);
    expect(daemon.state().pid).toBe(pid);
    const unknown = await pvcontrol('daemons', 'stop', 'dbus-daemon');
    expect([unknown.code, unknown.stderr]).toEqual([255, '{"Error":"Daemon not found"}\n']);
  });
});
