// The daemon end to end with real namespaces: a provider container P, a consumer container C, a fake pv-ctrl.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../daemon/daemon.js';
import { statIn } from '../../native/namespace.js';
import { type Container, startContainer } from '../../testkit/container.js';
import { FakeCtrl } from '../../testkit/fake-ctrl.js';
import {
  closeAll,
  connectFrom,
  contentOf,
  echo,
  eventually,
  fileWithContent,
  fileWithContentFds,
  type GraphEntry,
  graphEntry,
  PATIENCE_MS,
  type Provider,
  readBytes,
  readToEnd,
  startProvider,
  startTestDaemon,
} from '../../testkit/mesh.js';
import { getStatus as getStatusOf } from '../../testkit/testbed.js';

const INTERVAL_MS = 200;
const PROVIDER_SOCKET = '/run/p/echo.sock';
const TARGET = '/run/pv/services/echo.sock';

let work: string;
let ctrl: FakeCtrl;
let P: Container;
let C: Container;
let provider: Provider;
let daemon: Daemon | null = null;

function link(overrides: Partial<GraphEntry> = {}): GraphEntry {
  return graphEntry('unix', C, P, { name: 'echo', socket: PROVIDER_SOCKET, ...overrides });
}

async function startDaemon(): Promise<Daemon> {
  daemon = await startTestDaemon(ctrl, { intervalMs: INTERVAL_MS, statusSocket: join(work, 'status.sock') });
  return daemon;
}

function targetExists(container: Container, path = TARGET): Promise<boolean> {
  return statIn({ pid: container.pid, path }).then(
    (stat) => stat.type === 'socket',
    () => false,
  );
}

/** Thread ids of this process's pin workers. */
function pinWorkers(): string[] {
  return readdirSync('/proc/self/task').filter((tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'pvx-ns';
    } catch {
      return false;
    }
  });
}

/** How often a thread has slept and been woken (0 once it is gone). */
function contextSwitches(tid: string): number {
  try {
    const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
    return Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function getStatus(path: string): Promise<{ status: number; body: string }> {
  return getStatusOf(join(work, 'status.sock'), path);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-daemon-'));
  ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
  await ctrl.start();
  [P, C] = await Promise.all([startContainer({ privateTmp: true }), startContainer({ privateTmp: true })]);
  // An echo provider; asked 'fd?' with a file first, it answers 'hello' with a file of its own about what it read.
  provider = await startProvider(P.pid, PROVIDER_SOCKET, (socket) => {
    socket.once('data', ({ data, fds }) => {
      if (data.toString() === 'fd?') {
        const read = fds.map((fd) => contentOf(fd)).join();
        closeAll(fds);
        socket.write(Buffer.from('hello'), [fileWithContent(`provider read: ${read}`)]);
      } else {
        socket.write(data, fds);
      }
      echo(socket);
    });
  });
});

afterEach(async () => {
  await daemon?.stop();
  daemon = null;
  ctrl.setGraph([]);
});

afterAll(async () => {
  provider.close();
  await Promise.all([P.stop(), C.stop(), ctrl.stop()]);
  rmSync(work, { recursive: true, force: true });
});

describe('a unix link between two containers', () => {
  it('appears in the consumer and relays bytes, fds both ways, half-close and 64 MiB exactly', async () => {
    ctrl.setGraph([link()]);
    await startDaemon();
    expect(await targetExists(C)).toBe(true);
    // The host's own /run was never touched.
    expect(existsSync(TARGET)).toBe(false);

    // Bytes and a file descriptor each way: the provider reads the consumer's file and answers with its own.
    const client = await connectFrom(C.pid, TARGET);
    client.write(Buffer.from('fd?'), [fileWithContent('from the consumer')]);
    const answer = await readBytes(client, 5);
    expect(answer.data.toString()).toBe('hello');
    expect(answer.fds).toHaveLength(1);
    expect(contentOf(answer.fds[0] as number)).toBe('provider read: from the consumer');
    closeAll(answer.fds);
    // Every copy of both files is closed again (daemon and peers run in this process): the daemon keeps none of
    // the fds it passed on.
    await eventually(() => fileWithContentFds() === 0, PATIENCE_MS, 'the fds passed both ways closed');

    // 64 MiB byte-exact, then half-close: the client shuts its write side and still reads everything.
    const payload = randomBytes(64 * 1024 * 1024);
    const reply = readToEnd(client);
    for (let offset = 0; offset < payload.length; offset += 1 << 20) {
      if (!client.write(payload.subarray(offset, offset + (1 << 20)))) {
        await new Promise<void>((resolve) => client.once('drain', () => resolve()));
      }
    }
    client.end();
    const received = await reply;
    expect(received.data.length).toBe(payload.length);
    expect(createHash('sha256').update(received.data).digest('hex')).toBe(
      createHash('sha256').update(payload).digest('hex'),
    );

    const [status] = JSON.parse((await getStatus('/links')).body);
    expect(status).toMatchObject({
      consumer: 'app',
      name: 'echo',
      target: TARGET,
      type: 'unix',
      role: 'any',
      provider: 'svc',
      state: 'active',
      error: null,
    });
    expect(status.bytes.toProvider).toBe(3 + payload.length);
    expect(status.fds).toEqual({ toProvider: 1, toConsumer: 1 });
    expect(status.connections.total).toBe(1);
  });

  it('counts connections, bytes and fds of many relayed connections in GET /links', async () => {
    ctrl.setGraph([link()]);
    await startDaemon();
    const count = 40;
    const rounds = Array.from({ length: count }, async (_, i) => {
      const client = await connectFrom(C.pid, TARGET);
      const message = Buffer.from(`message ${String(i).padStart(4, '0')}`);
      const reply = readToEnd(client);
      client.write(message);
      client.end();
      expect((await reply).data.equals(message)).toBe(true);
      client.destroy();
      return message.length;
    });
    const bytes = (await Promise.all(rounds)).reduce((sum, length) => sum + length, 0);
    // One more, still open, with a file each way.
    const open = await connectFrom(C.pid, TARGET);
    open.write(Buffer.from('fd?'), [fileWithContent('from the consumer')]);
    const answer = await readBytes(open, 5);
    closeAll(answer.fds);
    const status = await eventually(
      async () => {
        const [link] = JSON.parse((await getStatus('/links')).body);
        return link.connections.active === 1 && link;
      },
      PATIENCE_MS,
      'the closed connections to be counted out',
    );
    expect(status.connections).toEqual({ active: 1, total: count + 1, failed: 0 });
    expect(status.bytes).toEqual({ toProvider: bytes + 3, toConsumer: bytes + 5 });
    expect(status.fds).toEqual({ toProvider: 1, toConsumer: 1 });
    open.destroy();
    await eventually(
      async () => JSON.parse((await getStatus('/links')).body)[0].connections.active === 0,
      PATIENCE_MS,
      'the last connection to be counted out',
    );
  });

  it('dials a provider in a container without its pinned worker, and finds its socket again after a restart', async () => {
    const path = '/run/p/restarting.sock';
    const answering = (word: string) =>
      startProvider(P.pid, path, (socket) => {
        socket.write(Buffer.from(word));
        socket.end();
      });
    let restarting = await answering('first');
    try {
      ctrl.setGraph([link({ socket: path })]);
      await startDaemon();
      const answer = async () => (await readToEnd(await connectFrom(C.pid, TARGET))).data.toString();
      expect(await answer()).toBe('first');
      // The daemon's pin workers now (connectFrom pins C afresh each time: its workers come and go).
      const workers = pinWorkers();
      const switches = () => workers.reduce((sum, tid) => sum + contextSwitches(tid), 0);
      const before = switches();
      for (let i = 0; i < 20; i += 1) expect(await answer()).toBe('first');
      // A dial through the worker would wake it once per connection at least.
      expect(switches() - before).toBeLessThan(5);
      // A restarted provider: the kept socket refuses, the path is resolved afresh.
      restarting.close();
      restarting = await answering('second');
      expect(await answer()).toBe('second');
      expect(await answer()).toBe('second');
    } finally {
      restarting.close();
    }
  });

  it('keeps a half-closed client until a delayed 1 MiB answer has arrived', async () => {
    const slowPath = '/run/p/slow.sock';
    const answer = randomBytes(1024 * 1024);
    const slow = await startProvider(P.pid, slowPath, (socket) => {
      socket.on('data', () => {});
      socket.on('end', () => {
        setTimeout(() => {
          socket.write(answer);
          socket.end();
        }, 300);
      });
    });
    ctrl.setGraph([link({ name: 'slow', socket: slowPath })]);
    await startDaemon();
    const client = await connectFrom(C.pid, '/run/pv/services/slow.sock');
    const reply = readToEnd(client);
    client.write(Buffer.from('question'));
    client.end();
    expect((await reply).data.equals(answer)).toBe(true);
    slow.close();
  });

  it('removes the consumer socket, and ends its open connections, when the link leaves the graph', async () => {
    ctrl.setGraph([link()]);
    await startDaemon();
    expect(await targetExists(C)).toBe(true);
    const open = await connectFrom(C.pid, TARGET);
    open.write(Buffer.from('x'));
    expect((await readBytes(open, 1)).data.toString()).toBe('x');
    const ended = readToEnd(open);
    ctrl.setGraph([]);
    await eventually(async () => !(await targetExists(C)), PATIENCE_MS, 'the socket to go');
    await ended;
    open.destroy();
  });

  it('replaces the listener on a spec change without a moment where the target is missing', async () => {
    const otherPath = '/run/p/other.sock';
    const other = await startProvider(P.pid, otherPath, (socket) => {
      socket.write(Buffer.from('other'));
      socket.end();
    });
    ctrl.setGraph([link()]);
    const running = await startDaemon();
    const before = running.reconciler.list()[0];

    let attempts = 0;
    let missing = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        attempts += 1;
        try {
          (await connectFrom(C.pid, TARGET)).destroy();
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') missing += 1;
        }
      }
    })();

    // Connections are tried before, during and after the swap: counted, not timed.
    await eventually(() => attempts >= 10, PATIENCE_MS, 'connect attempts before the change');
    ctrl.setGraph([link({ role: 'admin', socket: otherPath })]);
    await eventually(() => running.reconciler.list()[0] !== before, PATIENCE_MS, 'the replacement');
    await eventually(() => running.reconciler.list()[0]?.state === 'active', PATIENCE_MS, 'active');
    const swapped = attempts;
    await eventually(() => attempts >= swapped + 10, PATIENCE_MS, 'connect attempts after the change');
    stop = true;
    await loop;
    expect(missing).toBe(0);

    const client = await connectFrom(C.pid, TARGET);
    expect((await readToEnd(client)).data.toString()).toBe('other');
    other.close();
  });

  it('follows a provider restart (new pid)', async () => {
    ctrl.setGraph([link()]);
    const running = await startDaemon();
    const P2 = await startContainer({ privateTmp: true });
    const provider2 = await startProvider(P2.pid, PROVIDER_SOCKET, (socket) => {
      socket.write(Buffer.from('new provider'));
      socket.end();
    });
    ctrl.setGraph([link({ provider_pid: P2.pid })]);
    await eventually(
      () =>
        running.reconciler.list()[0]?.spec.providerPid === P2.pid &&
        running.reconciler.list()[0]?.state === 'active',
      PATIENCE_MS,
      'the new provider',
    );
    const client = await connectFrom(C.pid, TARGET);
    expect((await readToEnd(client)).data.toString()).toBe('new provider');
    provider2.close();
    await P2.stop();
  });

  it('keeps links working while pv-ctrl misbehaves, and shows the reason', async () => {
    ctrl.setGraph([link()]);
    await startDaemon();
    const answers = [
      { answer: { status: 500, body: 'State not loaded yet' }, reason: 'answered 500' },
      { answer: { status: 200, body: '{}' }, reason: 'not a JSON array' },
      { answer: { status: 200, body: '[{"consumer":"app",' }, reason: 'not valid JSON' },
      { answer: { status: 200, body: `[${' '.repeat(10 * 1024 * 1024)}]` }, reason: 'larger than' },
      {
        answer: { raw: 'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n[{"consumer"' },
        reason: 'pv-ctrl',
      },
    ];
    for (const { answer, reason } of answers) {
      ctrl.setAnswer(answer);
      await eventually(
        async () => JSON.parse((await getStatus('/links')).body)[0]?.graphError?.includes(reason),
        PATIENCE_MS,
        `graph error '${reason}'`,
      );
      const client = await connectFrom(C.pid, TARGET);
      const reply = readToEnd(client);
      client.write(Buffer.from('still here'));
      client.end();
      expect((await reply).data.toString()).toBe('still here');
    }
    await ctrl.stop();
    await eventually(
      async () => JSON.parse((await getStatus('/links')).body)[0]?.graphError?.includes('unreachable'),
      PATIENCE_MS,
      'pv-ctrl gone',
    );
    expect(await targetExists(C)).toBe(true);
    await ctrl.start();
    ctrl.setGraph([link()]);
    await eventually(
      async () => JSON.parse((await getStatus('/links')).body)[0]?.graphError === null,
      PATIENCE_MS,
      'recovery',
    );
  });

  it('leaves pending links alone: no socket is planted for a container that is not running', async () => {
    ctrl.setGraph([link({ consumer_pid: -1 }), link({ name: 'later', provider_pid: 0 })]);
    const running = await startDaemon();
    const states = running.reconciler.list().map((l) => [l.spec.name, l.state, l.error]);
    expect(states).toEqual([
      ['echo', 'pending', "container 'app' is not running (pid -1)"],
      ['later', 'pending', "container 'svc' is not running (pid 0)"],
    ]);
    expect(existsSync(TARGET)).toBe(false);
  });

  it('fails links of a type without a mediator', async () => {
    ctrl.setGraph([link()]);
    daemon = await startTestDaemon(ctrl, { mediators: new Map() });
    expect(daemon.reconciler.list()[0]).toMatchObject({
      state: 'failed',
      error: 'no mediator for type unix',
    });
    expect(await targetExists(C)).toBe(false);
  });
});
