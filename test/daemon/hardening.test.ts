// Hostile containers, resource bounds, scale and shutdown of the daemon.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Daemon } from '../../daemon/daemon.js';
import type { LinkLimits } from '../../daemon/link.js';
import type { FdSocket } from '../../native/fd-socket.js';
import { statIn } from '../../native/namespace.js';
import { type Container, startContainer } from '../../testkit/container.js';
import {
  connectFrom,
  eventually,
  type GraphEntry,
  graphEntry,
  openFdCount,
  PATIENCE_MS,
  type Provider,
  pidfdCount,
  readBytes,
  readToEnd,
  settled,
  startProvider,
} from '../../testkit/mesh.js';
import { daemonTestbed } from '../../testkit/testbed.js';

const INTERVAL_MS = 200;
const bed = daemonTestbed('hardening', INTERVAL_MS);

function startDaemon(limits?: Partial<LinkLimits>): Promise<Daemon> {
  return bed.startDaemon({ limits });
}

const unixLink = (consumer: Container | null, provider: Container | null, overrides: Partial<GraphEntry>) =>
  graphEntry('unix', consumer, provider, { name: 'echo', ...overrides });

async function container(setup?: string): Promise<Container> {
  const started = await startContainer({ privateTmp: true, setup });
  bed.defer(() => started.stop());
  return started;
}

async function provider(pid: number, path: string, handle?: (socket: FdSocket) => void): Promise<Provider> {
  const started = await startProvider(pid, path, handle);
  bed.defer(() => started.close());
  return started;
}

describe('hostile containers', () => {
  it('never plants through a consumer symlink that points at a host path', async () => {
    const hostDir = mkdtempSync(join(tmpdir(), 'pvx-hostlike-'));
    bed.defer(() => rmSync(hostDir, { recursive: true, force: true }));
    const P = await container();
    await provider(P.pid, '/run/p/echo.sock');
    // Inside C, /run/pv leads to a path that exists on the host only.
    const C = await container(`ln -s ${hostDir} /run/pv`);
    bed.ctrl.setGraph([unixLink(C, P, {})]);
    const running = await startDaemon();
    const [state] = running.reconciler.list();
    expect(state?.state).toBe('failed');
    expect(state?.error).toMatch(/listenIn \/run\/pv\/services\/echo\.sock.*ENOENT/);
    expect(readdirSync(hostDir)).toEqual([]);
  });

  it('never dials a host socket that a provider symlink points at', async () => {
    const hostDir = mkdtempSync(join(tmpdir(), 'pvx-hostsock-'));
    bed.defer(() => rmSync(hostDir, { recursive: true, force: true }));
    let hostConnections = 0;
    const hostServer = createServer((socket) => {
      hostConnections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => hostServer.listen(join(hostDir, 'api.sock'), resolve));
    bed.defer(() => new Promise<void>((resolve) => hostServer.close(() => resolve())));

    const P = await container(`mkdir -p /run/p && ln -s ${hostDir}/api.sock /run/p/api.sock`);
    const C = await container();
    bed.ctrl.setGraph([unixLink(C, P, { socket: '/run/p/api.sock' })]);
    const running = await startDaemon();
    const [state] = running.reconciler.list();
    expect(state?.state).toBe('failed');
    expect(state?.error).toMatch(/provider socket unreachable: resolveSocketIn \/run\/p\/api\.sock.*ENOENT/);
    await expect(statIn({ pid: C.pid, path: '/run/pv/services/echo.sock' })).rejects.toMatchObject({
      code: 'ENOENT',
    });
    expect(hostConnections).toBe(0);
  });
});

describe('resources', () => {
  it('returns to its fd baseline after 200 connect cycles and 50 concurrent streams', async () => {
    const P = await container();
    const C = await container();
    await provider(P.pid, '/run/p/echo.sock');
    bed.ctrl.setGraph([unixLink(C, P, {})]);
    const running = await startDaemon();
    const target = '/run/pv/services/echo.sock';
    const roundTrip = async (payload: Buffer) => {
      const client = await connectFrom(C.pid, target);
      const reply = readToEnd(client);
      client.write(payload);
      client.end();
      const { data } = await reply;
      expect(data.equals(payload)).toBe(true);
    };
    await roundTrip(Buffer.from('warm up'));
    await eventually(
      () => running.reconciler.list()[0]?.counters.connections.active === 0,
      PATIENCE_MS,
      'idle',
    );
    // The daemon's two pins stay; the test client's own pin (one per connection) is freed after its worker.
    await eventually(() => pidfdCount() === 2, PATIENCE_MS, 'the client pins freed');
    const baseline = openFdCount();

    for (let i = 0; i < 200; i += 1) await roundTrip(Buffer.from(`cycle ${i}`));
    await Promise.all(Array.from({ length: 50 }, (_, i) => roundTrip(Buffer.alloc(256 * 1024, i))));

    await eventually(() => openFdCount() === baseline, PATIENCE_MS, `fd count back to ${baseline}`);
    expect(running.reconciler.list()[0]?.counters.connections).toMatchObject({ active: 0, total: 251 });
  });

  it('does not buffer without bound for a consumer that never reads', async () => {
    const P = await container();
    const C = await container();
    // Kernel buffers on both socket pairs plus the relay's bounded queue: a few MiB at most.
    const bound = 16 * 1024 * 1024;
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024, 7);
    await provider(P.pid, '/run/p/flood.sock', (socket) => {
      const flood = () => {
        while (!socket.destroyed) {
          written += chunk.length;
          if (!socket.write(chunk)) return;
        }
      };
      socket.on('drain', flood);
      flood();
    });
    bed.ctrl.setGraph([unixLink(C, P, { name: 'flood', socket: '/run/p/flood.sock' })]);
    await startDaemon();
    const client = await connectFrom(C.pid, '/run/pv/services/flood.sock');
    // Read one chunk to prove the flood flows, then stop reading: every buffer on the way fills, and the
    // provider's writes must stop at a plateau under the bound (an unbounded relay never settles).
    await readBytes(client, 1);
    client.pause();
    const plateau = await settled(() => {
      if (written >= bound)
        throw new Error(`the provider wrote ${written} bytes to a consumer that reads none`);
      return written;
    }, 'the flood');
    expect(plateau).toBeGreaterThan(chunk.length);
    expect(plateau).toBeLessThan(bound);
    client.destroy();
  });
});

describe('connection limits', () => {
  it('accepts and closes connections over the per-link cap, and counts them', async () => {
    const P = await container();
    const C = await container();
    await provider(P.pid, '/run/p/echo.sock');
    bed.ctrl.setGraph([unixLink(C, P, {})]);
    const running = await startDaemon({ maxConnections: 2 });
    const target = '/run/pv/services/echo.sock';
    const held = [await connectFrom(C.pid, target), await connectFrom(C.pid, target)];
    for (const client of held) {
      client.write(Buffer.from('x'));
      await readBytes(client, 1);
    }
    const over = await connectFrom(C.pid, target);
    const { data } = await readToEnd(over);
    expect(data.length).toBe(0);
    expect(running.reconciler.list()[0]?.counters.connections).toMatchObject({
      active: 2,
      total: 2,
      rejected: 1,
    });
    for (const client of held) client.destroy();
  });

  it('reaps a half-open session that stays idle', async () => {
    const P = await container();
    const C = await container();
    // A provider that never answers and never closes.
    await provider(P.pid, '/run/p/mute.sock', (socket) => socket.on('data', () => {}));
    bed.ctrl.setGraph([unixLink(C, P, { name: 'mute', socket: '/run/p/mute.sock' })]);
    const running = await startDaemon({ idleHalfOpenMs: 300 });
    const client = await connectFrom(C.pid, '/run/pv/services/mute.sock');
    const closed = readToEnd(client);
    client.write(Buffer.from('anyone?'));
    client.end();
    await closed;
    await eventually(
      () => running.reconciler.list()[0]?.counters.connections.active === 0,
      PATIENCE_MS,
      'the reaping',
    );
  });
});

describe('scale', () => {
  it('creates 1000 host-side links and does not recreate them on unchanged polls', async () => {
    const shm = mkdtempSync('/dev/shm/pvx-links-');
    bed.defer(() => rmSync(shm, { recursive: true, force: true }));
    mkdirSync(join(shm, 'links'));
    await provider(0, join(shm, 'provider.sock'));
    const graph = Array.from({ length: 1000 }, (_, i) =>
      unixLink(null, null, {
        name: `l${i}`,
        socket: join(shm, 'provider.sock'),
        target: join(shm, 'links', `l${i}.sock`),
      }),
    );
    bed.ctrl.setGraph(graph);
    const running = await startDaemon();
    const first = running.reconciler.list();
    expect(first).toHaveLength(1000);
    expect(first.filter((l) => l.state !== 'active').map((l) => l.error)).toEqual([]);
    expect(readdirSync(join(shm, 'links'))).toHaveLength(1000);

    const polls = bed.ctrl.requests;
    await eventually(() => bed.ctrl.requests >= polls + 3, PATIENCE_MS, 'three more polls');
    const later = running.reconciler.list();
    expect(later.every((l, i) => l === first[i])).toBe(true);

    const client = await connectFrom(0, join(shm, 'links', 'l999.sock'));
    const reply = readToEnd(client);
    client.write(Buffer.from('999'));
    client.end();
    expect((await reply).data.toString()).toBe('999');
  });
});

describe('the pv-xconnect executable', () => {
  const cli = join(process.cwd(), 'dist', 'daemon', 'cli.js');

  it('removes every planted socket on SIGTERM and exits 0', async () => {
    expect(existsSync(cli), 'run `npm run build` first').toBe(true);
    const shm = mkdtempSync('/dev/shm/pvx-cli-');
    bed.defer(() => rmSync(shm, { recursive: true, force: true }));
    await provider(0, join(shm, 'provider.sock'));
    bed.ctrl.setGraph(
      ['a', 'b', 'c'].map((name) =>
        unixLink(null, null, { name, socket: join(shm, 'provider.sock'), target: join(shm, `${name}.sock`) }),
      ),
    );
    const child = spawn(
      process.execPath,
      [
        cli,
        '--ctrl-socket',
        bed.ctrl.socketPath,
        '--interval',
        '0.2',
        '--status-socket',
        join(shm, 'status.sock'),
      ],
      { stdio: 'pipe' },
    );
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await eventually(
      () => ['a', 'b', 'c', 'status'].every((n) => existsSync(join(shm, `${n}.sock`))),
      PATIENCE_MS,
      'sockets',
    );
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(readdirSync(shm).sort()).toEqual(['provider.sock']);
  });

  it('answers a bad flag with usage and exit code 2', async () => {
    const child = spawn(process.execPath, [cli, '--no-such-flag'], { stdio: 'pipe' });
    let stderr = '';
    child.stderr.on('data', (part) => {
      stderr += part;
    });
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(stderr).toContain('Usage: pv-xconnect');
  });
});
