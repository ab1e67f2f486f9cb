// The daemon as an attacker would try it (root, real namespaces): pids reused by host processes, host pids in
// the graph, containers that share the host's pid namespace and aim symlinks through /proc at the host, providers
// that die. Host sentinel files in /etc, /tmp and /run must survive byte-identical, and no host socket may be
// dialled.
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Daemon } from '../../daemon/daemon.js';
import type { Link } from '../../daemon/link.js';
import { renderMetrics } from '../../daemon/status-api.js';
import { statIn } from '../../native/namespace.js';
import {
  type Container,
  type ContainerOptions,
  hostProcessWithPid,
  killed,
  startContainer,
} from '../../testkit/container.js';
import {
  connectFrom,
  eventually,
  graphEntry,
  PATIENCE_MS,
  readToEnd,
  startProvider,
} from '../../testkit/mesh.js';
import { parseExposition } from '../../testkit/prometheus.js';
import { daemonTestbed } from '../../testkit/testbed.js';

const INTERVAL_MS = 200;
const unique = `${process.pid}-${Math.random().toString(16).slice(2, 8)}`;

const bed = daemonTestbed('trust', INTERVAL_MS);
const startDaemon = () => bed.startDaemon();

async function container(options: ContainerOptions = {}): Promise<Container> {
  const started = await startContainer({ privateTmp: true, ...options });
  bed.defer(() => started.stop());
  return started;
}

function hostProcess(child: ChildProcess): ChildProcess {
  bed.defer(() => killed(child));
  return child;
}

/** Host files with known bytes at paths the attacks aim at; `intact()` compares bytes and inodes. */
function sentinels(paths: string[]) {
  const before = paths.map((path) => {
    writeFileSync(path, `sentinel ${path} ${unique}\n`);
    bed.defer(() => rmSync(path, { force: true }));
    return { path, bytes: readFileSync(path), ino: statSync(path).ino };
  });
  return {
    intact: () =>
      before.map(({ path, bytes, ino }) => ({
        path,
        same: readFileSync(path).equals(bytes) && statSync(path).ino === ino && statSync(path).isFile(),
      })),
    expected: () => before.map(({ path }) => ({ path, same: true })),
  };
}

/** A host socket at `path` that counts connections: no one but the test may reach it. */
async function hostService(path: string): Promise<{ connections: () => number }> {
  let connections = 0;
  const server: Server = createServer((socket) => {
    connections += 1;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  bed.defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { connections: () => connections };
}

function theLink(running: Daemon, name: string): Link {
  const found = running.reconciler.list().find((link) => link.spec.name === name);
  if (!found) throw new Error(`no link ${name}`);
  return found;
}

/** Waits until the graph's new spec (role `role`) has been applied to these links and each one settled. */
function settledWithRole(running: Daemon, names: string[], role: string): Promise<unknown> {
  return eventually(
    () =>
      names.every((name) => {
        const link = theLink(running, name);
        return link.spec.role === role && link.state !== 'pending';
      }),
    PATIENCE_MS,
    `links ${names.join(', ')} with role ${role}`,
  );
}

/** Whether `path` is absent inside the container (any other answer, an error included, is not absence). */
const isAbsent = (container: Container, path: string) =>
  statIn({ pid: container.pid, path }).then(
    () => false,
    (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
  );

const stateOf = (running: Daemon, name: string) => {
  const { state, error } = theLink(running, name);
  return { state, error };
};

describe('a pid reused by a host process', () => {
  it('never plants for a dead consumer whose pid a host process now has, also when forced to re-plant', async () => {
    const hostTmp = `/tmp/pvx-sentinel-${unique}`;
    const hostRun = `/run/pvx-sentinel-${unique}`;
    const hostEtc = `/etc/pvx-sentinel-${unique}`;
    const P = await container();
    await startProvider(P.pid, '/run/p/echo.sock').then((p) => bed.defer(() => p.close()));
    const C = await container({ privateEtc: true });
    // Created after C copied the host's /etc: C's targets are free, the host's hold the sentinels.
    const files = sentinels([hostTmp, hostRun, hostEtc]);
    // The consumer's targets are, on the host, the sentinels (its /tmp, /run and /etc are its own).
    const links = (role: string) =>
      [hostTmp, hostRun, hostEtc].map((target, i) =>
        graphEntry('unix', C, P, { name: `l${i}`, target, socket: '/run/p/echo.sock', role }),
      );
    bed.ctrl.setGraph(links('any'));
    const running = await startDaemon();
    for (const name of ['l0', 'l1', 'l2'])
      expect(stateOf(running, name)).toEqual({ state: 'active', error: null });
    expect((await statIn({ pid: C.pid, path: hostEtc })).type).toBe('socket');

    await C.stop();
    hostProcess(await hostProcessWithPid(C.pid));
    // The graph still names that pid: the links go pending, and stay so.
    await eventually(
      () => ['l0', 'l1', 'l2'].every((name) => theLink(running, name).state === 'pending'),
      PATIENCE_MS,
      'pending links',
    );
    expect(stateOf(running, 'l0')).toEqual({ state: 'pending', error: 'consumer gone' });
    // Force a re-plant: a change of spec makes new links, which pin that pid afresh.
    bed.ctrl.setGraph(links('admin'));
    await settledWithRole(running, ['l0', 'l1', 'l2'], 'admin');
    for (const name of ['l0', 'l1', 'l2']) {
      expect(stateOf(running, name)).toEqual({
        state: 'failed',
        error: `consumer: pid ${C.pid} is not in a container`,
      });
    }
    // A daemon starting afresh on that graph refuses the same way.
    const fresh = await startDaemon();
    expect(stateOf(fresh, 'l2')).toEqual({
      state: 'failed',
      error: `consumer: pid ${C.pid} is not in a container`,
    });
    expect(files.intact()).toEqual(files.expected());
  });

  it('never dials for a dead provider whose pid a host process now has', async () => {
    const providerPath = `/run/pvx-provider-${unique}.sock`;
    const host = await hostService(providerPath);
    const P = await container();
    await startProvider(P.pid, providerPath).then((p) => bed.defer(() => p.close()));
    const C = await container();
    const link = (role: string) => graphEntry('unix', C, P, { name: 'svc', socket: providerPath, role });
    bed.ctrl.setGraph([link('any')]);
    const running = await startDaemon();
    expect(stateOf(running, 'svc')).toEqual({ state: 'active', error: null });

    await P.stop();
    hostProcess(await hostProcessWithPid(P.pid));
    // Before the daemon's next poll notices: a consumer connection is not relayed to the host's socket.
    const early = await connectFrom(C.pid, '/run/pv/services/svc.sock').then(
      async (client) => (await readToEnd(client)).data.length,
      () => 0,
    );
    expect(early).toBe(0);
    await eventually(() => theLink(running, 'svc').state === 'pending', PATIENCE_MS, 'pending');
    expect(stateOf(running, 'svc')).toEqual({ state: 'pending', error: 'provider gone' });
    // Nothing stays planted in the consumer while the provider is gone (removed right after the state changed).
    await eventually(
      () => isAbsent(C, '/run/pv/services/svc.sock'),
      PATIENCE_MS,
      'the consumer socket removed',
    );
    bed.ctrl.setGraph([link('admin')]);
    await settledWithRole(running, ['svc'], 'admin');
    expect(stateOf(running, 'svc')).toEqual({
      state: 'failed',
      error: `provider: pid ${P.pid} is not in a container`,
    });
    expect(host.connections()).toBe(0);
  });
});

describe('a host pid in the graph', () => {
  it('is refused for either end: nothing planted on the host, no host socket dialled', async () => {
    const hostTarget = `/tmp/pvx-sentinel-hostpid-${unique}`;
    const files = sentinels([hostTarget]);
    const providerPath = `/run/pvx-hostpid-${unique}.sock`;
    const host = await hostService(providerPath);
    // A live host socket as a target too (think /run/dbus/system_bus_socket): a plant would rename over it.
    const hostBus = `/run/pvx-bus-${unique}.sock`;
    const bus = await hostService(hostBus);
    const busInode = statSync(hostBus).ino;
    const hostPid = hostProcess(spawn('sleep', ['1000'], { stdio: 'ignore' })).pid as number;
    const P = await container();
    await startProvider(P.pid, providerPath).then((p) => bed.defer(() => p.close()));
    const C = await container();
    bed.ctrl.setGraph([
      graphEntry('unix', { pid: hostPid }, P, {
        name: 'as-consumer',
        target: hostTarget,
        socket: providerPath,
      }),
      graphEntry('unix', C, { pid: hostPid }, { name: 'as-provider', socket: providerPath }),
      graphEntry('unix', { pid: process.pid }, P, {
        name: 'the-daemon',
        target: hostTarget,
        socket: providerPath,
      }),
      graphEntry('unix', { pid: hostPid }, P, { name: 'over-a-bus', target: hostBus, socket: providerPath }),
    ]);
    const running = await startDaemon();
    expect(stateOf(running, 'as-consumer')).toEqual({
      state: 'failed',
      error: `consumer: pid ${hostPid} is not in a container`,
    });
    expect(stateOf(running, 'as-provider')).toEqual({
      state: 'failed',
      error: `provider: pid ${hostPid} is not in a container`,
    });
    expect(stateOf(running, 'the-daemon').error).toBe(`consumer: pid ${process.pid} is not in a container`);
    // Polls go on; nothing changes.
    const polls = bed.ctrl.requests;
    await eventually(() => bed.ctrl.requests >= polls + 2, PATIENCE_MS, 'two more polls');
    expect(files.intact()).toEqual(files.expected());
    expect(host.connections()).toBe(0);
    expect(stateOf(running, 'over-a-bus').error).toBe(`consumer: pid ${hostPid} is not in a container`);
    expect(statSync(hostBus).ino).toBe(busInode);
    expect(bus.connections()).toBe(0);
    await expect(statIn({ pid: C.pid, path: '/run/pv/services/as-provider.sock' })).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});

describe('a container that shares the host pid namespace', () => {
  it('cannot get a re-plant or an unlink into host directories by swapping a target directory for a magic link', async () => {
    const name = `pvx-sentinel-swap-${unique}`;
    const hostDirs = ['/etc', '/tmp', '/run'];
    const files = sentinels(hostDirs.map((dir) => `${dir}/${name}`));
    const P = await container();
    await startProvider(P.pid, '/run/p/echo.sock').then((p) => bed.defer(() => p.close()));
    const C = await container({ sharedPid: true });
    const links = (role: string) =>
      hostDirs.map((dir, i) =>
        graphEntry('unix', C, P, {
          name: `swap${i}`,
          target: `/run/pv${dir}/${name}`,
          role,
          socket: '/run/p/echo.sock',
        }),
      );
    bed.ctrl.setGraph(links('any'));
    const running = await startDaemon();
    for (const i of [0, 1, 2]) expect(theLink(running, `swap${i}`).state).toBe('active');
    // The consumer replaces each target's directory by a symlink to the host's directory through /proc.
    const swapped = await C.exec([
      'sh',
      '-c',
      hostDirs
        .map((dir) => `rm -rf /run/pv${dir} && ln -s /proc/${process.pid}/root${dir} /run/pv${dir}`)
        .join(' && '),
    ]);
    expect(swapped.code).toBe(0);
    // Control: from inside, that path now shows the host's sentinel.
    expect((await C.exec(['cat', `/run/pv/etc/${name}`])).stdout).toBe(`sentinel /etc/${name} ${unique}\n`);
    // Forced re-plant (a new spec), then removal from the graph (an unlink of the old target).
    bed.ctrl.setGraph(links('admin'));
    await settledWithRole(running, ['swap0', 'swap1', 'swap2'], 'admin');
    for (const i of [0, 1, 2]) {
      expect(stateOf(running, `swap${i}`)).toMatchObject({
        state: 'failed',
        error: expect.stringMatching(/ELOOP/),
      });
    }
    bed.ctrl.setGraph([]);
    await eventually(() => running.reconciler.list().length === 0, PATIENCE_MS, 'links removed');
    expect(files.intact()).toEqual(files.expected());
  });

  it('cannot point the provider socket through /proc/self/root, /proc/<pid>/root or /proc/<pid>/fd/N', async () => {
    const hostDir = mkdtempSync(join(tmpdir(), 'pvx-hostapi-'));
    bed.defer(() => rmSync(hostDir, { recursive: true, force: true }));
    const host = await hostService(join(hostDir, 'api.sock'));
    const dirFd = openSync(hostDir, 'r');
    bed.defer(() => closeSync(dirFd));
    const P = await container({
      sharedPid: true,
      setup: `mkdir -p /run/p && ln -s /proc/${process.pid}/root${hostDir} /run/p/hostdir`,
    });
    const C = await container();
    const paths = [
      `/proc/self/root${hostDir}/api.sock`,
      `/proc/${process.pid}/root${hostDir}/api.sock`,
      `/proc/${process.pid}/fd/${dirFd}/api.sock`,
      '/run/p/hostdir/api.sock',
    ];
    bed.ctrl.setGraph(paths.map((socket, i) => graphEntry('unix', C, P, { name: `magic${i}`, socket })));
    const running = await startDaemon();
    for (const i of paths.keys()) {
      expect(stateOf(running, `magic${i}`)).toMatchObject({
        state: 'failed',
        error: expect.stringMatching(/^provider socket unreachable: .*ELOOP/),
      });
      await expect(statIn({ pid: C.pid, path: `/run/pv/services/magic${i}.sock` })).rejects.toMatchObject({
        code: 'ENOENT',
      });
    }
    // Control: from inside P those paths do reach the host socket.
    const control = await P.exec(['socat', '-u', 'OPEN:/dev/null', `UNIX-CONNECT:${paths[1]}`]);
    expect(control.code).toBe(0);
    await eventually(() => host.connections() === 1, PATIENCE_MS, 'the control connection');
    // The daemon retried meanwhile: still nothing of its own.
    const polls = bed.ctrl.requests;
    await eventually(() => bed.ctrl.requests >= polls + 2, PATIENCE_MS, 'two more polls');
    expect(host.connections()).toBe(1);
  });
});

describe('a provider that dies', () => {
  it('shows pending / provider gone in /links and /metrics within one interval', async () => {
    const P = await container();
    await startProvider(P.pid, '/run/p/echo.sock').then((p) => bed.defer(() => p.close()));
    const C = await container();
    bed.ctrl.setGraph([graphEntry('unix', C, P, { name: 'dies', socket: '/run/p/echo.sock' })]);
    const running = await startDaemon();
    expect(stateOf(running, 'dies')).toEqual({ state: 'active', error: null });
    const polls = bed.ctrl.requests;
    await P.stop();
    await eventually(() => theLink(running, 'dies').state === 'pending', PATIENCE_MS, 'pending');
    // Noticed by the first poll after the death (or sooner, by a failed dial): within one interval.
    expect(bed.ctrl.requests - polls).toBeLessThanOrEqual(2);
    expect(stateOf(running, 'dies')).toEqual({ state: 'pending', error: 'provider gone' });
    const metrics = parseExposition(
      renderMetrics({ links: () => running.reconciler.list(), graph: () => running.graph() }),
    );
    expect(metrics.get('pvx_link_up')?.samples.map((s) => [s.labels.name, s.value])).toEqual([['dies', 0]]);
    expect(metrics.get('pvx_links')?.samples.find((s) => s.labels.state === 'pending')?.value).toBe(1);
    await eventually(
      () => isAbsent(C, '/run/pv/services/dies.sock'),
      PATIENCE_MS,
      'the consumer socket removed',
    );
  });
});
