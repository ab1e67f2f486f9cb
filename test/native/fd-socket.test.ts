// The fd-carrying socket layer: fd passing and its ordering, backpressure, half-close, the listener,
// resource exhaustion (fd limit lowered on this very process with prlimit) and bad input. Every test
// checks that the process holds as many fds afterwards as before.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { FdListener } from '../../native/fd-listener.js';
import { type Chunk, FdSocket } from '../../native/fd-socket.js';
import { fdio, MAX_FDS_PER_SENDMSG } from '../../native/fdio.js';
import { closeFd, dupFd } from '../../native/fds.js';
import { lowerFdLimit } from '../../testkit/fd-limit.js';
import { listenFd, socketPair, socketPairFds } from '../../testkit/sockets.js';

const dir = mkdtempSync(join(tmpdir(), 'pvx-fd-socket-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let fdsBefore = 0;
beforeEach(() => {
  fdsBefore = openFdCount();
});

/** The supplementary groups of a process as the kernel lists them (`Groups:` in /proc/PID/status). */
function supplementaryGroups(pid: string): number[] {
  const line = /^Groups:(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
  return line.trim() === '' ? [] : line.trim().split(/\s+/).map(Number);
}

function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** After a few loop turns, the process holds exactly as many fds as when the test started. */
async function expectNoFdLeak(): Promise<void> {
  await turns(3); // 'close' events and libuv close callbacks run on later turns
  expect(openFdCount()).toBe(fdsBefore);
}

function turns(count: number): Promise<void> {
  let chain = Promise.resolve();
  for (let i = 0; i < count; i++) chain = chain.then(() => new Promise((resolve) => setImmediate(resolve)));
  return chain;
}

let fileCount = 0;
/** An fd open read-only on a new temp file holding `content`. */
function fileWith(content: string): number {
  const path = join(dir, `file-${fileCount++}`);
  writeFileSync(path, content);
  return openSync(path, 'r');
}

function contentOf(fd: number): string {
  const buffer = Buffer.alloc(256);
  return buffer.toString('utf8', 0, readSync(fd, buffer, 0, buffer.length, 0));
}

function destroyAll(...sockets: FdSocket[]): Promise<unknown> {
  return Promise.all(
    sockets.map((socket) => {
      if (socket.destroyed) return Promise.resolve();
      const closed = once(socket, 'close');
      socket.destroy();
      return closed;
    }),
  );
}

interface FdArrival {
  /** Stream offsets of the chunk the fds came with: [start, end). */
  start: number;
  end: number;
  fds: number[];
}

/** Reads `length` bytes, recording where fds arrived. */
function receive(socket: FdSocket, length: number): Promise<{ data: Buffer; arrivals: FdArrival[] }> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const arrivals: FdArrival[] = [];
    let offset = 0;
    socket.on('data', ({ data, fds }: Chunk) => {
      if (fds.length > 0) arrivals.push({ start: offset, end: offset + data.length, fds });
      parts.push(data);
      offset += data.length;
      if (offset >= length) resolve({ data: Buffer.concat(parts), arrivals });
    });
    socket.once('error', reject);
  });
}

/** Rejects if `promise` takes longer than 5 s, so that the caller's cleanup runs before the test times out. */
async function within5s<T>(promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no result within 5 s')), 5000);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('fd passing', () => {
  it('delivers a file fd that reads back its content, close-on-exec, and closes the sent one', async () => {
    const [a, b] = socketPair();
    const sent = fileWith('known content');
    a.write(Buffer.from('x'), [sent]);
    const [chunk] = (await once(b, 'data')) as [Chunk];
    expect(chunk.data.toString()).toBe('x');
    expect(chunk.fds).toHaveLength(1);
    const received = chunk.fds[0] as number;
    expect(contentOf(received)).toBe('known content');
    const flags = /flags:\s+([0-7]+)/.exec(readFileSync(`/proc/self/fdinfo/${received}`, 'utf8'))?.[1];
    expect(Number.parseInt(flags ?? '0', 8) & 0o2000000).toBe(0o2000000); // O_CLOEXEC
    closeFd(received);
    await destroyAll(a, b);
    await expectNoFdLeak(); // the sender's copy was closed after sending
  });

  it('sends fds with the first bytes of their write, also when sendmsg takes only part of it', async () => {
    const [a, b] = socketPair({ highWaterMark: 16 << 20 });
    const prefix = Buffer.alloc(1000, 'p');
    const big = Buffer.alloc(4 << 20);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    const tail = Buffer.from('tail bytes');
    a.write(prefix);
    a.write(big, [fileWith('one'), fileWith('two')]);
    a.write(tail, [fileWith('three')]);
    await turns(1);
    // The peer does not read yet: the big write went out partly (the prefix left in its own sendmsg).
    expect(a.writableLength).toBeGreaterThan(tail.length);
    expect(a.writableLength).toBeLessThan(big.length + tail.length);

    const total = prefix.length + big.length + tail.length;
    const { data, arrivals } = await receive(b, total);
    expect(data.equals(Buffer.concat([prefix, big, tail]))).toBe(true);
    expect(arrivals).toHaveLength(2);
    const [first, second] = arrivals as [FdArrival, FdArrival];
    // Each fd batch came with a chunk holding the first byte of its write, not with later bytes.
    expect(first.start).toBeLessThanOrEqual(prefix.length);
    expect(first.end).toBeGreaterThan(prefix.length);
    expect(first.fds.map(contentOf)).toEqual(['one', 'two']);
    expect(second.start).toBeLessThanOrEqual(prefix.length + big.length);
    expect(second.end).toBeGreaterThan(prefix.length + big.length);
    expect(second.fds.map(contentOf)).toEqual(['three']);
    for (const fd of [...first.fds, ...second.fds]) closeFd(fd);
    await destroyAll(a, b);
    await expectNoFdLeak();
  });

  it('passes 200 fds one after another without leaking any', async () => {
    const [a, b] = socketPair();
    const file = fileWith('shared file');
    for (let i = 0; i < 200; i++) a.write(Buffer.from([i]), [dupFd(file)]);
    closeFd(file);
    const { data, arrivals } = await receive(b, 200);
    expect([...data]).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(arrivals.map(({ fds }) => fds.length)).toEqual(Array(200).fill(1));
    for (const { fds } of arrivals) {
      expect(contentOf(fds[0] as number)).toBe('shared file');
      closeFd(fds[0] as number);
    }
    await destroyAll(a, b);
    await expectNoFdLeak();
  });

  it('sends one Buffer or an array of them, from the offset into the first', async () => {
    const [x, y] = socketPairFds();
    expect(fdio.send(x, Buffer.from('skip:one'), 5, null)).toBe(3);
    expect(fdio.send(x, [Buffer.from('..two'), Buffer.from('three')], 2, null)).toBe(8);
    expect(fdio.recv(y, 64)?.data.toString()).toBe('onetwothree');
    expect(() => fdio.send(x, Buffer.from('ab'), 3, null)).toThrow(
      expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }),
    );
    expect(() => fdio.send(x, [], 0, null)).toThrow(expect.objectContaining({ code: 'ERR_OUT_OF_RANGE' }));
    for (const fd of [x, y]) closeFd(fd);
    await expectNoFdLeak();
  });

  it('carries 253 fds in one write and rejects 254 (the kernel limit)', async () => {
    const [x, y] = socketPairFds();
    const file = fileWith('many');
    expect(() => fdio.send(x, [Buffer.from('!')], 0, Array(254).fill(file))).toThrow(
      expect.objectContaining({ code: 'EINVAL' }),
    );
    expect(fdio.send(x, [Buffer.from('!')], 0, Array(253).fill(file))).toBe(1);
    const chunk = fdio.recv(y, 16);
    expect(chunk?.fds).toHaveLength(MAX_FDS_PER_SENDMSG);
    for (const fd of chunk?.fds ?? []) closeFd(fd);
    for (const fd of [x, y, file]) closeFd(fd);
    await expectNoFdLeak();
  });

  it('closes the fds that arrived and fails the socket when the receiver cannot take them all', async () => {
    // 5-byte reads: 'first' comes alone; its handler fills the fd table, leaving room for one of the
    // three fds of 'second', read next in the same loop: the kernel installs one and flags MSG_CTRUNC.
    const [a, b] = socketPair({ readSize: 5 });
    const files = [fileWith('1'), fileWith('2'), fileWith('3')];
    const limit = lowerFdLimit();
    try {
      b.on('data', ({ data }: Chunk) => {
        if (data.toString() === 'first') limit.fill(1);
      });
      a.write(Buffer.from('first'));
      a.write(Buffer.from('second'), files);
      const [error] = (await within5s(once(b, 'error'))) as [NodeJS.ErrnoException];
      expect(error.code).toBe('ECTRUNC');
      expect(b.destroyed).toBe(true);
    } finally {
      limit.restore();
    }
    await destroyAll(a);
    await expectNoFdLeak();
  });
});

describe('backpressure', () => {
  it('bounds the queue while the writer honours false, and drains once the reader reads', async () => {
    const highWaterMark = 256 * 1024;
    const [a, b] = socketPair({ highWaterMark });
    const chunkSize = 64 * 1024;
    const chunks = 256; // 16 MiB
    let falses = 0;
    let drains = 0;
    a.on('drain', () => drains++);
    let maxQueued = 0;
    let reading = false;
    const received = new Promise<number>((resolve) => {
      let bytes = 0;
      let index = 0;
      b.on('data', ({ data }: Chunk) => {
        for (const byte of data) {
          if (byte !== Math.floor(index / chunkSize) % 256) throw new Error(`corrupt byte at ${index}`);
          index++;
        }
        bytes += data.length;
        if (bytes === chunkSize * chunks) resolve(bytes);
      });
      b.pause();
    });

    for (let i = 0; i < chunks; i++) {
      const ok = a.write(Buffer.alloc(chunkSize, i % 256));
      maxQueued = Math.max(maxQueued, a.writableLength);
      if (ok) continue;
      falses++;
      const drained = once(a, 'drain');
      if (!reading) {
        await turns(5);
        expect(drains).toBe(0); // nobody reads: the queue cannot empty
        expect(a.writableLength).toBeGreaterThan(0);
        reading = true;
        b.resume();
      }
      await drained;
    }
    expect(await received).toBe(chunkSize * chunks);
    expect(falses).toBeGreaterThan(0);
    expect(drains).toBe(falses);
    expect(maxQueued).toBeLessThan(highWaterMark + chunkSize);
    await destroyAll(a, b);
    await expectNoFdLeak();
  });
});

describe('data listeners', () => {
  /** Writes `text` from `a` and waits until `b` has read it (the listener `seen` records every chunk's text). */
  async function roundOf(a: FdSocket, text: string, seen: () => string[]): Promise<void> {
    a.write(Buffer.from(text));
    await within5s(
      (async () => {
        while (!seen().join('').endsWith(text)) await turns(1);
      })(),
    );
  }

  it('delivers every chunk to whichever listeners are attached at the time, as they change', async () => {
    const [a, b] = socketPair();
    const first: string[] = [];
    const second: string[] = [];
    const late: string[] = [];
    const toFirst = ({ data }: Chunk) => first.push(data.toString());
    const toSecond = ({ data }: Chunk) => second.push(data.toString());
    b.on('data', toFirst);
    await roundOf(a, 'one', () => first);
    b.on('data', toSecond);
    await roundOf(a, 'two', () => second);
    b.off('data', toFirst);
    await roundOf(a, 'three', () => second);
    b.once('data', ({ data }: Chunk) => late.push(data.toString()));
    b.off('data', toSecond);
    await roundOf(a, 'four', () => late);
    b.on('data', toFirst);
    await roundOf(a, 'five', () => first);
    b.removeAllListeners();
    b.on('data', toSecond);
    await roundOf(a, 'six', () => second);
    b.removeAllListeners('data');
    b.on('data', toFirst);
    await roundOf(a, 'seven', () => first);
    expect(first.join('')).toBe('onetwofiveseven');
    expect(second.join('')).toBe('twothreesix');
    expect(late).toEqual(['four']);
    await destroyAll(a, b);
    await expectNoFdLeak();
  });

  it('closes the fds of a chunk read once its last listener is gone', async () => {
    const [a, b] = socketPair();
    const seen: string[] = [];
    const listener = ({ data, fds }: Chunk) => {
      seen.push(data.toString());
      b.off('data', listener);
      for (const fd of fds) closeFd(fd);
    };
    b.on('data', listener);
    await roundOf(a, 'kept', () => seen);
    b.resume(); // read on with nobody listening: the chunk is dropped, its fd closed
    a.write(Buffer.from('dropped'), [fileWith('x')]);
    await turns(5);
    expect(seen).toEqual(['kept']);
    await destroyAll(a, b);
    await expectNoFdLeak();
  });
});

describe('half-close', () => {
  it('delivers end to the peer, which can still answer; both close once both directions are done', async () => {
    const [a, b] = socketPair();
    const aClosed = once(a, 'close');
    const bClosed = once(b, 'close');
    const aReceived: Buffer[] = [];
    a.on('data', ({ data }: Chunk) => aReceived.push(data));
    const aEnded = once(a, 'end');
    a.write(Buffer.from('question'));
    a.end();
    const bReceived: Buffer[] = [];
    b.on('data', ({ data }: Chunk) => bReceived.push(data));
    await once(b, 'end');
    expect(Buffer.concat(bReceived).toString()).toBe('question');
    expect(b.readableEnded).toBe(true);
    expect(b.destroyed).toBe(false);
    b.write(Buffer.from('answer'));
    b.end();
    await aEnded;
    expect(Buffer.concat(aReceived).toString()).toBe('answer');
    await Promise.all([aClosed, bClosed]);
    expect(a.destroyed && b.destroyed).toBe(true);
    await expectNoFdLeak();
  });
});

describe('detach', () => {
  it('gives the open fd up: no more events, close on the next tick, unread bytes left for its next reader', async () => {
    const [a, b] = socketPair();
    const received: Buffer[] = [];
    a.on('data', ({ data }: Chunk) => received.push(data));
    b.write(Buffer.from('read by a'));
    while (received.length === 0) await turns(1);
    const closed = once(a, 'close');
    expect(a.detachable).toBe(true);
    const fd = a.detach();
    expect(a.destroyed).toBe(true);
    b.write(Buffer.from('left in the kernel'));
    await closed;
    await turns(3);
    expect(Buffer.concat(received).toString()).toBe('read by a');
    const next = new FdSocket(fd);
    const [chunk] = (await once(next, 'data')) as [Chunk];
    expect(chunk.data.toString()).toBe('left in the kernel');
    next.write(Buffer.from('and it writes'));
    const [reply] = (await once(b, 'data')) as [Chunk];
    expect(reply.data.toString()).toBe('and it writes');
    next.destroy();
    b.destroy();
    await expectNoFdLeak();
  });

  it('is refused while anything of the socket is pending: queued writes, an end, the peer ended, destroyed', async () => {
    const refused = (socket: FdSocket) => {
      expect(socket.detachable).toBe(false);
      expect(() => socket.detach()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }));
    };
    const [queued, queuedPeer] = socketPair();
    queued.write(Buffer.from('not flushed before the microtask'));
    refused(queued);
    const [ending, endingPeer] = socketPair();
    ending.end();
    refused(ending);
    const [ended, endedPeer] = socketPair();
    ended.resume();
    endedPeer.end();
    await once(ended, 'end');
    refused(ended);
    const [gone, gonePeer] = socketPair();
    gone.destroy();
    refused(gone);
    for (const socket of [queued, queuedPeer, ending, endingPeer, ended, endedPeer, gonePeer])
      socket.destroy();
    await expectNoFdLeak();
  });
});

describe('FdListener', () => {
  function connect(path: string): Promise<Socket> {
    const client = createConnection(path);
    return once(client, 'connect').then(() => client);
  }

  async function closeClient(client: Socket): Promise<void> {
    const closed = once(client, 'close');
    client.destroy();
    await closed;
  }

  it('accepts connections whose peer credentials are this process', async () => {
    const path = join(dir, 'accept.sock');
    const listener = new FdListener(listenFd(path));
    const connection = once(listener, 'connection') as Promise<[FdSocket]>;
    const client = await connect(path);
    const [socket] = await connection;
    expect(socket.peerCred()).toEqual({ pid: process.pid, uid: process.getuid?.(), gid: process.getgid?.() });
    // Exactly the supplementary groups the kernel lists for us (process.getgroups() adds the egid).
    expect(socket.peerGroups()).toEqual(supplementaryGroups('self'));

    client.write('hello');
    const [chunk] = (await once(socket, 'data')) as [Chunk];
    expect(chunk.data.toString()).toBe('hello');
    socket.write(Buffer.from('world'));
    const [answer] = (await once(client, 'data')) as [Buffer];
    expect(answer.toString()).toBe('world');

    const closed = once(listener, 'close');
    listener.close();
    await closed;
    expect(existsSync(path)).toBe(true); // close never unlinks
    rmSync(path);
    await closeClient(client);
    await destroyAll(socket);
    await expectNoFdLeak();
  });

  it("reports a peer's supplementary groups exactly (a client started with groups of its own)", async () => {
    const path = join(dir, 'groups.sock');
    const listener = new FdListener(listenFd(path));
    const connection = once(listener, 'connection') as Promise<[FdSocket]>;
    // The client waits on its stdin, so its groups can be read while it is connected.
    const client = spawn('setpriv', ['--groups=4242,4243', 'socat', 'STDIN', `UNIX-CONNECT:${path}`]);
    const [socket] = await connection;
    expect(socket.peerCred().pid).toBe(client.pid);
    expect(supplementaryGroups(String(client.pid))).toEqual([4242, 4243]);
    expect(socket.peerGroups()).toEqual([4242, 4243]);
    const closed = once(client, 'close'); // exited, and its stdio pipes closed
    client.stdin.end();
    await closed;
    listener.close();
    rmSync(path);
    await destroyAll(socket);
    await expectNoFdLeak();
  });

  it('leaves connections in the backlog while paused and accepts them on resume', async () => {
    const path = join(dir, 'pause.sock');
    const listener = new FdListener(listenFd(path));
    const accepted: FdSocket[] = [];
    listener.on('connection', (socket) => accepted.push(socket));
    listener.pause();
    const client = await connect(path);
    await turns(5);
    expect(accepted).toHaveLength(0);
    listener.resume();
    await once(listener, 'connection');
    expect(accepted).toHaveLength(1);
    listener.close();
    rmSync(path);
    await closeClient(client);
    await destroyAll(...accepted);
    await expectNoFdLeak();
  });

  it('reports EMFILE once, backs off, and accepts again once fds are available', async () => {
    const path = join(dir, 'emfile.sock');
    const listener = new FdListener(listenFd(path));
    const errors: NodeJS.ErrnoException[] = [];
    listener.on('error', (error) => errors.push(error));
    const accepted: FdSocket[] = [];
    listener.pause();
    const clients = [await connect(path), await connect(path)];
    const limit = lowerFdLimit();
    try {
      // The first connection fills the fd table: the next accept, in the same loop, hits EMFILE.
      listener.on('connection', (socket) => {
        accepted.push(socket);
        if (accepted.length === 1) limit.fill(0);
      });
      listener.resume(); // paused before the first 'connection' listener: stays paused until resumed
      await within5s(once(listener, 'error'));
      expect(accepted).toHaveLength(1);
      // Several retry periods pass while still out of fds: still only the one report.
      await new Promise((resolve) => setTimeout(resolve, 350));
      limit.release();
      await within5s(once(listener, 'connection'));
    } finally {
      limit.restore();
    }
    expect(accepted).toHaveLength(2);
    expect(errors.map((error) => error.code)).toEqual(['EMFILE']);
    listener.close();
    rmSync(path);
    await Promise.all(clients.map(closeClient));
    await destroyAll(...accepted);
    await expectNoFdLeak();
  });

  it('destroys a connection nobody listens for any more', async () => {
    const path = join(dir, 'unheard.sock');
    const listener = new FdListener(listenFd(path));
    const onConnection = () => {};
    listener.on('connection', onConnection);
    listener.off('connection', onConnection);
    const client = await connect(path);
    await once(client, 'close'); // accepted, then destroyed: the client sees EOF
    listener.close();
    rmSync(path);
    await expectNoFdLeak();
  });
});

describe('bad input', () => {
  it('destroys once: one error, one close, and a second destroy is a no-op', async () => {
    const [a, b] = socketPair();
    const events: string[] = [];
    a.on('error', (error) => events.push(`error:${error.message}`));
    a.on('close', () => events.push('close'));
    a.destroy(new Error('first'));
    a.destroy(new Error('second'));
    await turns(1);
    expect(events).toEqual(['error:first', 'close']);
    await destroyAll(b);
    await expectNoFdLeak();
  });

  it('after destroy, write discards data and closes the fds it was given; peerCred throws', async () => {
    const [a, b] = socketPair();
    await destroyAll(a);
    expect(a.write(Buffer.from('late'), [fileWith('late')])).toBe(false);
    expect(() => a.peerCred()).toThrow(expect.objectContaining({ code: 'ERR_SOCKET_CLOSED' }));
    await destroyAll(b);
    await expectNoFdLeak();
  });

  it('rejects bad writes by throwing, leaving the fds with the caller', async () => {
    const [a, b] = socketPair();
    const file = fileWith('kept');
    expect(() => a.write(Buffer.alloc(0), [file])).toThrow(RangeError);
    expect(() => a.write(Buffer.from('x'), Array(MAX_FDS_PER_SENDMSG + 1).fill(file))).toThrow(RangeError);
    expect(() => a.write(Buffer.from('x'), [-1])).toThrow(TypeError);
    a.end();
    expect(() => a.write(Buffer.from('x'), [file])).toThrow(
      expect.objectContaining({ code: 'ERR_STREAM_WRITE_AFTER_END' }),
    );
    expect(contentOf(file)).toBe('kept'); // still open, still ours
    closeFd(file);
    await destroyAll(a, b);
    await expectNoFdLeak();
  });

  it('surfaces an invalid fd in a write as EBADF on the socket', async () => {
    const [a, b] = socketPair();
    a.write(Buffer.from('x'), [1_000_000]);
    const [error] = (await once(a, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('EBADF');
    expect(a.destroyed).toBe(true);
    await destroyAll(b);
    await expectNoFdLeak();
  });

  it('reports EPIPE to a writer whose peer is gone', async () => {
    const [a, b] = socketPair();
    await destroyAll(b);
    a.write(Buffer.from('into the void'));
    const [error] = (await once(a, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('EPIPE');
    await expectNoFdLeak();
  });

  it('delivers what a resetting peer sent before it closed with our data unread, then ECONNRESET', async () => {
    const [a, b] = socketPair();
    a.write(Buffer.from('never read'));
    b.write(Buffer.from('last words'));
    await turns(1);
    await destroyAll(b);
    // a starts reading only now: its first poll reports the reset together with the pending bytes.
    const received: Buffer[] = [];
    a.on('data', ({ data }: Chunk) => received.push(data));
    const [error] = (await once(a, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('ECONNRESET');
    expect(Buffer.concat(received).toString()).toBe('last words');
    await expectNoFdLeak();
  });

  it('delivers what a peer sent before it closed, even when our next write to it fails with EPIPE', async () => {
    const [socket, peer] = socketPairFds();
    const a = new FdSocket(socket);
    const received: Buffer[] = [];
    a.on('data', ({ data }: Chunk) => received.push(data));
    const errored = once(a, 'error') as Promise<[NodeJS.ErrnoException]>;
    // More than the socket buffer holds: `a` keeps the rest queued and waits until it can write again.
    a.write(Buffer.alloc(4 << 20, 0x61));
    await turns(2);
    expect(a.writableLength).toBeGreaterThan(0);
    // The peer reads all it was sent so far (so its close is clean, not a reset), answers and closes, all before
    // `a` runs again: `a`'s next poll reports readable and writable at once, and the write that follows fails.
    while (fdio.recv(peer, 1 << 20) !== null);
    fdio.send(peer, [Buffer.from('last words')], 0, null);
    closeFd(peer);
    const [error] = await errored;
    expect(error.code).toBe('EPIPE');
    expect(Buffer.concat(received).toString()).toBe('last words');
    await expectNoFdLeak();
  });

  it('reads what a closed peer sent before reporting the EPIPE of a write made before that was read', async () => {
    const [socket, peer] = socketPairFds();
    const a = new FdSocket(socket);
    const events: string[] = [];
    a.on('data', ({ data }: Chunk) => events.push(data.toString()));
    a.on('end', () => events.push('end'));
    const errored = once(a, 'error') as Promise<[NodeJS.ErrnoException]>;
    fdio.send(peer, [Buffer.from('last words')], 0, null);
    closeFd(peer);
    a.write(Buffer.from('too late')); // sent before `a` polls again: EPIPE before the peer's bytes are read
    const [error] = await errored;
    expect(error.code).toBe('EPIPE');
    expect(events).toEqual(['last words', 'end']);
    expect(a.write(Buffer.from('after'))).toBe(false);
    await expectNoFdLeak();
  });

  it('throws EBADF from the primitives on a closed fd, and from adopting one', async () => {
    const [x, y] = socketPairFds();
    closeFd(x);
    expect(() => fdio.recv(x, 16)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => fdio.send(x, [Buffer.from('x')], 0, null)).toThrow(
      expect.objectContaining({ code: 'EBADF' }),
    );
    expect(() => closeFd(x)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    expect(() => new FdSocket(x)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    closeFd(y);
    await expectNoFdLeak();
  });
});

describe('poll handles', () => {
  it('are closed when a worker that still polls is terminated', async () => {
    // The build the binding loaded (the sanitizer run's, under `npm run test:asan`).
    const addon =
      process.env.PVX_NATIVE_ADDON ||
      join(import.meta.dirname, '..', '..', 'build', 'Release', 'pvx_native.node');
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const native = require(workerData.addon);
       const fds = native.socketPair();
       // Held, or the handle is collected and closed, and the worker ends on its own before it is terminated.
       globalThis.poll = native.pollStart(fds[0], 1, () => {});
       parentPort.postMessage(fds);`,
      { eval: true, workerData: { addon } },
    );
    const [fds] = (await once(worker, 'message')) as [number[]];
    expect(await worker.terminate()).toBe(1);
    // Reaching this line means the worker's loop closed without aborting the process.
    for (const fd of fds) closeFd(fd);
    await expectNoFdLeak();
  });
});
