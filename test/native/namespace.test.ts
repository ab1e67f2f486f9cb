// Namespace operations against real namespaces (root): sockets and nodes planted inside a container's mount
// namespace, symlinks resolved as the container sees them, per-thread credentials, and clean failures.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binding } from '../../native/binding.js';
import { FdListener } from '../../native/fd-listener.js';
import {
  connectIn,
  connectSocket,
  isGoneError,
  kernelFeatures,
  listenIn,
  mknodIn,
  type NamespaceError,
  PinnedNamespace,
  readFileIn,
  statIn,
  unlinkIn,
  withDeadline,
} from '../../native/namespace.js';
import { type Container, hostProcessWithPid, killed, startContainer } from '../../testkit/container.js';
import { eventually, PATIENCE_MS, pidfdCount, settled } from '../../testkit/mesh.js';

const suffix = `${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
/** The path the symlinks inside the containers point at; on the host it exists and must stay empty. */
const hostLike = `/tmp/pvx-hostlike-${suffix}`;
/** A pid no process can have (above any pid_max). */
const NO_SUCH_PID = 0x7ffffffe;

let container: Container;
let previousUmask: number;

beforeAll(async () => {
  mkdirSync(hostLike);
  container = await startContainer({
    privateTmp: true,
    setup: [
      `mkdir -p ${hostLike}`,
      `ln -s ${hostLike} /run/evil`,
      `ln -s /tmp/pvx-absent-${suffix} /run/dangling`,
      'printf hello > /run/hello.txt',
      'ln -s /run/hello.txt /run/hello-link',
      'printf x > /run/file',
    ].join('\n'),
  });
  // A umask that would visibly change 0o666 if it leaked into the native operations.
  previousUmask = process.umask(0o077);
});

afterAll(async () => {
  await container?.stop();
  process.umask(previousUmask);
  rmSync(hostLike, { recursive: true, force: true });
});

function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}

/** O_NONBLOCK and O_CLOEXEC both set on fd (from /proc/self/fdinfo, octal flags). */
function isNonBlockingCloexec(fd: number): boolean {
  const fdinfo = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
  const flags = Number.parseInt(/^flags:\s+([0-7]+)$/m.exec(fdinfo)?.[1] ?? '0', 8);
  const wanted = 0o4000 | 0o2000000; // O_NONBLOCK | O_CLOEXEC
  return (flags & wanted) === wanted;
}

/** Adopts a listening fd from listenIn; every accepted connection is handed to onConnection. */
async function adopt(fd: number, onConnection: (socket: net.Socket) => void): Promise<net.Server> {
  const server = net.createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, resolve);
  });
  return server;
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Rejection of p, as a NamespaceError (fails the test if p resolves). */
async function failure(p: Promise<unknown>): Promise<NamespaceError> {
  try {
    await p;
  } catch (error) {
    return error as NamespaceError;
  }
  throw new Error('expected a rejection');
}

/** Echo-with-prefix server: replies "pong:<everything received>" once the client half-closes. */
function pongOnEnd(socket: net.Socket): void {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('end', () => socket.end(`pong:${Buffer.concat(chunks).toString()}`));
  socket.on('error', () => socket.destroy());
}

describe('the test container', () => {
  it('runs in its own pid and mount namespaces, with a private /run', async () => {
    const ns = (pid: number | string, kind: string) => readlinkSync(`/proc/${pid}/ns/${kind}`);
    expect(ns(container.pid, 'mnt')).not.toBe(ns('self', 'mnt'));
    expect(ns(container.pid, 'pid')).not.toBe(ns('self', 'pid'));
    // Host pid first, then 1 inside its own pid namespace.
    expect(readFileSync(`/proc/${container.pid}/status`, 'utf8')).toMatch(
      new RegExp(`^NSpid:\\s+${container.pid}\\s+1$`, 'm'),
    );
    expect(existsSync('/run/hello.txt')).toBe(false);
    const inside = await container.exec(['cat', '/run/hello.txt']);
    expect(inside).toMatchObject({ stdout: 'hello', code: 0 });
  });

  it('stop() ends the init and everything started inside', async () => {
    const other = await startContainer();
    /** Host pids of every process in the container's pid namespace. */
    const members = () => {
      const namespace = readlinkSync(`/proc/${other.pid}/ns/pid`);
      return readdirSync('/proc')
        .filter((entry) => /^\d+$/.test(entry))
        .filter((pid) => {
          try {
            return readlinkSync(`/proc/${pid}/ns/pid`) === namespace;
          } catch {
            return false; // exited meanwhile
          }
        })
        .map(Number);
    };
    const sleeper = other.spawn(['sh', '-c', 'echo started; exec sleep 1000']);
    await new Promise((resolve) => sleeper.stdout?.once('data', resolve));
    const before = members();
    expect(before).toContain(other.pid);
    expect(before.length).toBeGreaterThanOrEqual(2); // the init and the sleeper
    await other.stop();
    expect(sleeper.exitCode !== null || sleeper.signalCode !== null).toBe(true);
    for (const pid of before)
      expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    await other.stop(); // idempotent
  });

  it('fails to start, with the setup error, when a setup command fails', async () => {
    await expect(startContainer({ setup: 'echo about to fail; ls /definitely-absent' })).rejects.toThrow(
      /container did not start[\s\S]*definitely-absent/,
    );
  });
});

describe('listenIn', () => {
  it('plants a listening socket inside the container that a client there can talk to; the host is untouched', async () => {
    const hostHadRunX = existsSync('/run/x');
    const planted = await listenIn({ pid: container.pid, path: '/run/x/y.sock' });
    const server = await adopt(planted.fd, pongOnEnd);
    try {
      const client = await container.exec(['socat', '-', 'UNIX-CONNECT:/run/x/y.sock'], { input: 'ping' });
      expect(client).toMatchObject({ stdout: 'pong:ping', code: 0 });
      const st = await statIn({ pid: container.pid, path: '/run/x/y.sock' });
      expect(st).toMatchObject({ type: 'socket', mode: 0o666, uid: 0, ino: planted.ino, dev: planted.dev });
      expect((await statIn({ pid: container.pid, path: '/run/x' })).mode).toBe(0o755);
      expect(existsSync('/run/x')).toBe(hostHadRunX);
      expect(existsSync('/run/x/y.sock')).toBe(false);
    } finally {
      await closeServer(server);
    }
  });

  it('applies the requested mode exactly and returns a non-blocking, close-on-exec fd', async () => {
    const planted = await listenIn({
      pid: container.pid,
      path: '/run/modes/private.sock',
      mode: 0o600,
      backlog: 4,
    });
    try {
      expect((await statIn({ pid: container.pid, path: '/run/modes/private.sock' })).mode).toBe(0o600);
      expect(isNonBlockingCloexec(planted.fd)).toBe(true);
    } finally {
      closeSync(planted.fd);
    }
  });

  it('replaces an existing socket atomically: a connector looping inside never sees ENOENT', async () => {
    const path = '/run/swap/live.sock';
    const servers: net.Server[] = [];
    const inodes: number[] = [];
    const accepted: number[] = [];
    let onAccept: (() => void) | undefined;
    const plant = async () => {
      const index = servers.length;
      accepted[index] = 0;
      const planted = await listenIn({ pid: container.pid, path });
      inodes.push(planted.ino);
      servers.push(
        await adopt(planted.fd, (socket) => {
          accepted[index] = (accepted[index] ?? 0) + 1;
          socket.on('error', () => {});
          socket.end('k');
          onAccept?.();
        }),
      );
      return index;
    };

    await plant();
    // One node process connecting in a tight loop until told to stop; prints its tally. It waits for each
    // answer before the next connect, so the listeners' backlogs never fill (that would be EAGAIN).
    const connector = container.spawn([
      process.execPath,
      '-e',
      `const net = require('node:net');
       let ok = 0, stop = false; const errors = {};
       process.stdin.on('data', () => { stop = true; });
       const next = () => {
         if (stop) { console.log(JSON.stringify({ ok, errors })); process.exit(0); }
         const s = net.connect(${JSON.stringify(path)});
         s.on('data', () => { ok++; s.destroy(); setImmediate(next); });
         s.on('error', (e) => { errors[e.code] = (errors[e.code] || 0) + 1; setImmediate(next); });
       };
       next();`,
    ]);
    let tally = '';
    connector.stdout?.on('data', (chunk: Buffer) => {
      tally += chunk.toString();
    });
    const connectorClosed = new Promise<number | null>((resolve) => connector.once('close', resolve));
    /** Resolves once listener `index` has accepted a connection: the connector reached it by name. */
    const reached = (index: number) =>
      Promise.race([
        new Promise<void>((resolve) => {
          onAccept = () => {
            if ((accepted[index] ?? 0) > 0) resolve();
          };
          onAccept();
        }),
        connectorClosed.then((code) => Promise.reject(new Error(`connector exited early (${code})`))),
      ]);
    try {
      await reached(0);
      for (let round = 1; round <= 10; round++) await reached(await plant());
      connector.stdin?.write('stop\n');
      expect(await connectorClosed).toBe(0);
      const result = JSON.parse(tally) as { ok: number; errors: Record<string, number> };
      expect(result.errors).toEqual({});
      expect(result.ok).toBeGreaterThanOrEqual(11);
      expect((await statIn({ pid: container.pid, path })).ino).toBe(inodes.at(-1));
      expect(new Set(inodes).size).toBe(11);
      const listing = await container.exec(['ls', '-A', '/run/swap']);
      expect(listing.stdout).toBe('live.sock\n'); // no temporary names left behind
    } finally {
      connector.kill('SIGKILL');
      await Promise.all(servers.map(closeServer));
    }
  });

  it('resolves an absolute symlink inside the container, never on the host', async () => {
    // Control: the naive /proc/<pid>/root path does land on the host (the trap this API exists to avoid).
    const naive = net.createServer();
    await new Promise<void>((resolve) =>
      naive.listen(`/proc/${container.pid}/root/run/evil/naive.sock`, resolve),
    );
    expect(readdirSync(hostLike)).toEqual(['naive.sock']);
    await closeServer(naive);
    expect(readdirSync(hostLike)).toEqual([]);

    const planted = await listenIn({ pid: container.pid, path: '/run/evil/s.sock' });
    try {
      expect(readdirSync(hostLike)).toEqual([]);
      const inside = await statIn({ pid: container.pid, path: `${hostLike}/s.sock` });
      expect(inside).toMatchObject({ type: 'socket', ino: planted.ino });
      expect((await statIn({ pid: container.pid, path: '/run/evil' })).type).toBe('symlink');
      // A symlink dangling inside the container fails there, whatever exists on the host.
      mkdirSync(`/tmp/pvx-absent-${suffix}`);
      try {
        const error = await failure(listenIn({ pid: container.pid, path: '/run/dangling/s.sock' }));
        expect(error.code).toBe('ENOENT');
        expect(readdirSync(`/tmp/pvx-absent-${suffix}`)).toEqual([]);
      } finally {
        rmSync(`/tmp/pvx-absent-${suffix}`, { recursive: true });
      }
    } finally {
      closeSync(planted.fd);
    }
  });
});

describe('connectIn', () => {
  it('connects to a socket inside the container and carries bytes both ways', async () => {
    const planted = await listenIn({ pid: container.pid, path: '/run/echo/s.sock' });
    const server = await adopt(planted.fd, pongOnEnd);
    try {
      const fd = await connectIn({ pid: container.pid, path: '/run/echo/s.sock' });
      expect(isNonBlockingCloexec(fd)).toBe(true);
      const socket = new net.Socket({ fd, readable: true, writable: true });
      const reply: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => reply.push(chunk));
      const closed = new Promise((resolve) => socket.once('close', resolve));
      socket.end('hi');
      await closed;
      expect(Buffer.concat(reply).toString()).toBe('pong:hi');
    } finally {
      await closeServer(server);
    }
  });

  describe('with credentials', () => {
    type Peer = { uid: number; gid: number; groups: number[] };
    const path = '/run/creds/s.sock';
    let listener: FdListener;
    /** SO_PEERCRED / SO_PEERGROUPS of every connection accepted, in order. */
    const peers: Peer[] = [];
    let onPeer: (() => void) | undefined;
    const peersSeen = (count: number) =>
      new Promise<void>((resolve) => {
        onPeer = () => {
          if (peers.length >= count) resolve();
        };
        onPeer();
      });

    beforeAll(async () => {
      listener = new FdListener((await listenIn({ pid: container.pid, path })).fd);
      listener.on('connection', (socket) => {
        peers.push({ uid: socket.peerCred().uid, gid: socket.peerCred().gid, groups: socket.peerGroups() });
        socket.destroy();
        onPeer?.();
      });
    });
    afterAll(() => {
      listener?.close();
    });

    /** What the listener saw for one connectIn with these credentials. */
    const peerOf = async (credentials: { uid?: number; gid?: number; groups?: number[] }) => {
      const index = peers.length;
      closeSync(await connectIn({ pid: container.pid, path, ...credentials }));
      await peersSeen(index + 1);
      return peers[index];
    };

    it('gives the connection exactly uid 1001, gid 1002 and no supplementary groups', async () => {
      expect(await peerOf({ uid: 1001, gid: 1002, groups: [] })).toEqual({
        uid: 1001,
        gid: 1002,
        groups: [],
      });
    });

    it('gives the connection exactly the groups [5, 7]', async () => {
      expect(await peerOf({ uid: 1001, gid: 1002, groups: [5, 7] })).toEqual({
        uid: 1001,
        gid: 1002,
        groups: [5, 7],
      });
    });

    it('without credentials connects as the daemon itself', async () => {
      const peer = await peerOf({});
      // The kernel's view of our groups (Node's getgroups() adds the egid).
      const groups = /^Groups:(.*)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]?.trim() ?? '';
      expect(peer).toEqual({
        uid: 0,
        gid: 0,
        groups: groups === '' ? [] : groups.split(/\s+/).map(Number),
      });
    });

    it("never changes the process's own identity, also with 50 in flight and JS running meanwhile", async () => {
      /** uid/gid/groups of the process and of every thread except our short-lived "pvx-ns" ones. */
      const identity = () => {
        const threads = readdirSync('/proc/self/task').flatMap((tid) => {
          try {
            const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
            if (/^Name:\s+pvx-ns$/m.test(status)) return [];
            return [/^(Uid|Gid|Groups):.*$/gm[Symbol.match](status)?.join('|') ?? ''];
          } catch {
            return []; // the thread ended between readdir and read
          }
        });
        return {
          uid: process.getuid?.(),
          euid: process.geteuid?.(),
          gid: process.getgid?.(),
          egid: process.getegid?.(),
          groups: process.getgroups?.(),
          threads: [...new Set(threads)],
        };
      };
      const before = identity();
      expect(before.threads).toHaveLength(1); // every thread agrees
      const samples: ReturnType<typeof identity>[] = [];
      const timer = setInterval(() => samples.push(identity()), 1);
      const before50 = peers.length;
      try {
        const fds = await Promise.all(
          Array.from({ length: 50 }, (_, i) =>
            connectIn({
              pid: container.pid,
              path,
              uid: 2000 + i,
              gid: 3000 + i,
              groups: [i],
            }),
          ),
        );
        for (const fd of fds) closeSync(fd);
        await peersSeen(before50 + 50);
      } finally {
        clearInterval(timer);
      }
      samples.push(identity());
      for (const sample of samples) expect(sample).toEqual(before);
      const seen = peers.slice(before50).sort((a, b) => a.uid - b.uid);
      expect(seen).toEqual(
        Array.from({ length: 50 }, (_, i) => ({ uid: 2000 + i, gid: 3000 + i, groups: [i] })),
      );
    });
  });
});

describe('resolveSocket and connectSocket', () => {
  it("resolve the container's socket once; the inode is then dialled from this thread, also after the pin is gone", async () => {
    const planted = await listenIn({ pid: container.pid, path: '/run/kept/s.sock' });
    let connections = 0;
    const server = await adopt(planted.fd, (socket) => {
      connections += 1;
      pongOnEnd(socket);
    });
    const pinned = PinnedNamespace.pin(container.pid);
    const inode = await pinned.resolveSocket('/run/kept/s.sock');
    // Needs no namespace and no worker any more: the pin is released before the dials.
    pinned.release();
    try {
      expect(readlinkSync(`/proc/self/fd/${inode}`)).toBe('/run/kept/s.sock');
      for (const word of ['one', 'two']) {
        const fd = connectSocket(inode, '/run/kept/s.sock', container.pid);
        expect(isNonBlockingCloexec(fd)).toBe(true);
        const socket = new net.Socket({ fd, readable: true, writable: true });
        const reply: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => reply.push(chunk));
        const closed = new Promise((resolve) => socket.once('close', resolve));
        socket.end(word);
        await closed;
        expect(Buffer.concat(reply).toString()).toBe(`pong:${word}`);
      }
      expect(connections).toBe(2);
      // Once nothing listens on it: refused, the error naming the path and the pid it was resolved in.
      await closeServer(server);
      let refused: NamespaceError | undefined;
      try {
        connectSocket(inode, '/run/kept/s.sock', container.pid);
      } catch (error) {
        refused = error as NamespaceError;
      }
      expect(refused).toMatchObject({
        code: 'ECONNREFUSED',
        syscall: 'connect',
        path: '/run/kept/s.sock',
        pid: container.pid,
        message: `connectIn /run/kept/s.sock (pid ${container.pid}): ECONNREFUSED (Connection refused)`,
      });
    } finally {
      closeSync(inode);
      server.close();
    }
  });

  it('refuse what is not a socket, and an fd that is not one', async () => {
    const pinned = PinnedNamespace.pin(container.pid);
    try {
      expect(await failure(pinned.resolveSocket('/run/file'))).toMatchObject({
        code: 'ECONNREFUSED',
        message: expect.stringContaining('not a socket'),
      });
      expect((await failure(pinned.resolveSocket('/run/absent.sock'))).code).toBe('ENOENT');
      const file = openSync('/dev/null', 'r');
      try {
        expect(() => connectSocket(file, '/dev/null', 0)).toThrow(
          expect.objectContaining({ code: 'ECONNREFUSED' }),
        );
      } finally {
        closeSync(file);
      }
      expect(() => connectSocket(-1, '/x', 0)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    } finally {
      pinned.release();
    }
  });
});

describe('unlinkIn', () => {
  it('removes the socket only while it is still the inode we planted', async () => {
    const path = '/run/owned/s.sock';
    const first = await listenIn({ pid: container.pid, path });
    const second = await listenIn({ pid: container.pid, path });
    try {
      expect(second.ino).not.toBe(first.ino);
      expect(await unlinkIn({ pid: container.pid, path, ino: first.ino })).toBe(false);
      expect((await statIn({ pid: container.pid, path })).ino).toBe(second.ino);
      expect(await unlinkIn({ pid: container.pid, path, ino: second.ino })).toBe(true);
      expect((await failure(statIn({ pid: container.pid, path }))).code).toBe('ENOENT');
      expect(await unlinkIn({ pid: container.pid, path, ino: second.ino })).toBe(false);
    } finally {
      closeSync(first.fd);
      closeSync(second.fd);
    }
  });
});

describe('mknodIn', () => {
  it('creates a char device with exactly the given numbers, mode and owner inside the container', async () => {
    const node = {
      pid: container.pid,
      path: '/run/dev/nullish',
      major: 1,
      minor: 3,
      mode: 0o666,
      uid: 1001,
      gid: 1002,
    };
    const created = await mknodIn(node);
    const seen = await container.exec(['stat', '-c', '%F %t %T %a %u %g %i', node.path]);
    expect(seen.stdout.trim()).toBe(`character special file 1 3 666 1001 1002 ${created.ino}`);
    expect(await statIn(node)).toMatchObject({ type: 'char', rdevMajor: 1, rdevMinor: 3, mode: 0o666 });
    expect(existsSync('/run/dev/nullish')).toBe(false);
    // Planting again replaces the node (new inode, new numbers).
    const again = await mknodIn({ ...node, minor: 5, mode: 0o620 });
    expect(again.ino).not.toBe(created.ino);
    expect(await statIn(node)).toMatchObject({
      ino: again.ino,
      rdevMinor: 5,
      mode: 0o620,
      uid: 1001,
      gid: 1002,
    });
  });

  it('creates block devices and refuses to replace a node of another kind', async () => {
    const disk = {
      pid: container.pid,
      path: '/run/dev/disk',
      major: 7,
      minor: 0,
      mode: 0o600,
      uid: 0,
      gid: 6,
    };
    await mknodIn({ ...disk, type: 'block' });
    expect(await statIn(disk)).toMatchObject({
      type: 'block',
      rdevMajor: 7,
      rdevMinor: 0,
      mode: 0o600,
      gid: 6,
    });
    const overBlock = await failure(mknodIn(disk));
    expect(overBlock.code).toBe('EEXIST');
    expect(overBlock.message).toContain('exists and is not a character device');
    const overFile = await failure(mknodIn({ ...disk, path: '/run/file' }));
    expect(overFile.code).toBe('EEXIST');
    expect((await readFileIn({ pid: container.pid, path: '/run/file', maxBytes: 10 })).toString()).toBe('x');
  });
});

describe('statIn and readFileIn', () => {
  it('describes a symlink without following it', async () => {
    const st = await statIn({ pid: container.pid, path: '/run/hello-link' });
    expect(st.type).toBe('symlink');
    expect((await statIn({ pid: container.pid, path: '/run/hello.txt' })).type).toBe('file');
    expect((await statIn({ pid: container.pid, path: '/run' })).type).toBe('dir');
  });

  it('reads a small regular file inside the container (symlinks followed there)', async () => {
    const text = await readFileIn({ pid: container.pid, path: '/run/hello-link', maxBytes: 5 });
    expect(text.toString()).toBe('hello');
    const hostname = await readFileIn({ pid: 0, path: '/etc/hostname', maxBytes: 4096 });
    expect(hostname.toString()).toBe(readFileSync('/etc/hostname', 'utf8'));
  });

  it('reads files whose size stat does not tell (procfs), still capped by maxBytes', async () => {
    // /proc/thread-self is the reading thread itself: the dedicated one, named, and still root here.
    const status = (
      await readFileIn({ pid: 0, path: '/proc/thread-self/status', maxBytes: 65536 })
    ).toString();
    expect(status).toMatch(/^Name:\s+pvx-ns$/m);
    expect(status).toMatch(/^Uid:\s+0\s+0\s+0\s+0$/m);
    const error = await failure(readFileIn({ pid: 0, path: '/proc/thread-self/status', maxBytes: 100 }));
    expect(error.code).toBe('EFBIG');
  });

  it('refuses what is not a regular file', async () => {
    expect((await failure(readFileIn({ pid: container.pid, path: '/run', maxBytes: 10 }))).code).toBe(
      'EISDIR',
    );
    const error = await failure(readFileIn({ pid: 0, path: '/dev/null', maxBytes: 10 }));
    expect(error.code).toBe('EINVAL');
    expect(error.message).toContain('not a regular file');
  });
});

describe('bad input', () => {
  it('fails clearly, with the right code, and leaks no fd', async () => {
    const pid = container.pid;
    // Warm up (the addon, fs caches) so that the count below sees only what the operations themselves open,
    // and let that pin go (a pin closes its pidfd after its worker has ended).
    await failure(connectIn({ pid, path: '/run/absent.sock' }));
    await eventually(() => pidfdCount() === 0 && workerThreads() === 0, PATIENCE_MS, 'released pins');
    const fdsBefore = openFdCount();
    const long = `/run/${'a'.repeat(103)}`; // 108 bytes
    const cases: [() => Promise<unknown>, string, RegExp][] = [
      [
        () => listenIn({ pid, path: 'run/x.sock' }),
        'EINVAL',
        /^listenIn run\/x\.sock \(pid \d+\): EINVAL \(path must be absolute\)$/,
      ],
      [() => listenIn({ pid, path: long }), 'ENAMETOOLONG', /at most 107 bytes/],
      [() => connectIn({ pid, path: long }), 'ENAMETOOLONG', /at most 107 bytes/],
      [() => listenIn({ pid, path: '/run/a\0b' }), 'EINVAL', /NUL/],
      [() => statIn({ pid, path: 'relative' }), 'EINVAL', /must be absolute/],
      [
        () => listenIn({ pid: NO_SUCH_PID, path: '/run/x.sock' }),
        'ESRCH',
        new RegExp(`^pin pid ${NO_SUCH_PID}: ESRCH`),
      ],
      [() => listenIn({ pid: -1, path: '/run/x.sock' }), 'EINVAL', /pid must be/],
      [
        () => listenIn({ pid, path: '/run/file' }),
        'EEXIST',
        /^listenIn \/run\/file \(pid \d+\): EEXIST \(exists and is not a socket\)$/,
      ],
      [
        () => listenIn({ pid, path: '/run/file/y.sock' }),
        'ENOTDIR',
        new RegExp(`^listenIn /run/file/y\\.sock \\(pid ${pid}\\): ENOTDIR \\(Not a directory\\)$`),
      ],
      [() => listenIn({ pid, path: '/run/x/' }), 'EINVAL', /last component/],
      [() => listenIn({ pid, path: '/run/m.sock', mode: 0o10000 }), 'EINVAL', /mode/],
      [() => connectIn({ pid, path: '/run/file' }), 'ECONNREFUSED', /^connectIn \/run\/file/],
      [
        () => connectIn({ pid, path: '/run/absent.sock' }),
        'ENOENT',
        /^connectIn \/run\/absent\.sock \(pid \d+\): ENOENT/,
      ],
      [() => connectIn({ pid, path: '/run/creds/s.sock', uid: 5 }), 'EINVAL', /uid and gid/],
      [() => connectIn({ pid, path: '/run/creds/s.sock', uid: 5, gid: 5, groups: [-1] }), 'EINVAL', /groups/],
      [() => readFileIn({ pid, path: '/run/hello.txt', maxBytes: 4 }), 'EFBIG', /larger than maxBytes/],
      [() => readFileIn({ pid, path: '/run/absent', maxBytes: 4 }), 'ENOENT', /readFileIn \/run\/absent/],
      [() => unlinkIn({ pid, path: '/run/file', ino: -1 }), 'EINVAL', /ino/],
      [
        () => mknodIn({ pid, path: '/run/n', mode: 0o600, major: 4096, minor: 0, uid: 0, gid: 0 }),
        'EINVAL',
        /major/,
      ],
    ];
    for (const [operation, code, message] of cases) {
      const error = await failure(operation());
      expect(error).toBeInstanceOf(Error);
      expect({ code: error.code, message: error.message }).toEqual({
        code,
        message: expect.stringMatching(message),
      });
    }
    expect((await readFileIn({ pid, path: '/run/file', maxBytes: 10 })).toString()).toBe('x');
    // A released pin closes its pidfd once its worker has ended.
    await eventually(() => openFdCount() === fdsBefore, PATIENCE_MS, `fd count back to ${fdsBefore}`);
  });

  it('is validated in C as well (the raw addon, bypassing the TS checks)', async () => {
    type RawOperation = (...args: unknown[]) => Promise<unknown>;
    const raw = binding as Record<
      'listenIn' | 'connectIn' | 'unlinkIn' | 'statIn' | 'mknodIn' | 'readFileIn' | 'pin' | 'release',
      RawOperation
    >;
    // Counted before the pins below: a released pin's worker closes its fds, then ends.
    await eventually(() => pidfdCount() === 0 && workerThreads() === 0, PATIENCE_MS, 'released pins');
    const fdsBefore = openFdCount();
    const host = raw.pin(0);
    const released = raw.pin(0);
    raw.release(released);
    const cases: [() => Promise<unknown>, string, RegExp][] = [
      [() => raw.listenIn(host, 'relative', 0o666, 1), 'EINVAL', /must be absolute/],
      [() => raw.listenIn(host, `/${'b'.repeat(107)}`, 0o666, 1), 'ENAMETOOLONG', /107/],
      [() => raw.statIn(host, '/a\0b'), 'EINVAL', /NUL/],
      [() => raw.statIn(host, 42), 'EINVAL', /must be a string/],
      [() => raw.statIn(0, '/'), 'EINVAL', /not a namespace handle/],
      [() => raw.statIn({}, '/'), 'EINVAL', /not a namespace handle/],
      [() => raw.statIn(released, '/'), 'EBADF', /released/],
      [() => raw.pin(-5), 'EINVAL', /pid/],
      [() => raw.pin(1.5), 'EINVAL', /pid/],
      [() => raw.listenIn(host, '/run/pvx-never.sock', 'rw', 1), 'EINVAL', /mode/],
      [() => raw.connectIn(host, '/run/pvx-never.sock', 1, null, null), 'EINVAL', /uid and gid/],
      [() => raw.connectIn(host, '/run/pvx-never.sock', 1, 1, [1, 'x']), 'EINVAL', /groups/],
      [() => raw.mknodIn(host, '/run/pvx-never', 'char', 0o600, 1, 3, 0, 0), 'EINVAL', /blockDevice/],
      [() => raw.readFileIn(host, '/etc/hostname'), 'EINVAL', /maxBytes/],
      [() => raw.unlinkIn(host, '/run/pvx-never', 2 ** 60), 'EINVAL', /ino/],
    ];
    try {
      for (const [call, code, message] of cases) {
        const error = await failure(Promise.resolve().then(call));
        expect({ code: error.code, message: error.message }).toEqual({
          code,
          message: expect.stringMatching(message),
        });
      }
    } finally {
      raw.release(host);
    }
    expect(existsSync('/run/pvx-never.sock')).toBe(false);
    await eventually(
      () => workerThreads() === 0 && openFdCount() === fdsBefore,
      PATIENCE_MS,
      `fd count back to ${fdsBefore}`,
    );
  });

  it('works on the host with pid 0, leaving nothing behind', async () => {
    const dir = `/tmp/pvx-host-${suffix}`;
    try {
      const planted = await listenIn({ pid: 0, path: `${dir}/h.sock` });
      const server = await adopt(planted.fd, pongOnEnd);
      try {
        const fd = await connectIn({ pid: 0, path: `${dir}/h.sock` });
        closeSync(fd);
        expect(await unlinkIn({ pid: 0, path: `${dir}/h.sock`, ino: planted.ino })).toBe(true);
        expect(readdirSync(dir)).toEqual([]);
        writeFileSync(`${dir}/f`, 'data');
        expect((await readFileIn({ pid: 0, path: `${dir}/f`, maxBytes: 4 })).toString()).toBe('data');
      } finally {
        await closeServer(server);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Names of this process's threads that are namespace workers. */
function workerThreads(): number {
  return readdirSync('/proc/self/task').filter((tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'pvx-ns';
    } catch {
      return false; // ended meanwhile
    }
  }).length;
}

describe.each([
  { name: 'pidfd', features: { pidfd: true } },
  { name: '/proc/<pid> directory (kernels before 5.3)', features: { pidfd: false } },
])('pinning, by $name', ({ features }) => {
  beforeAll(() => {
    kernelFeatures(features);
  });
  afterAll(() => {
    kernelFeatures({ pidfd: true });
  });

  it('follows the pinned process, not its pid: gone is gone, even once the pid is a host process', async () => {
    const doomed = await startContainer({ setup: 'mkdir -p /run/d' });
    const pinned = PinnedNamespace.pin(doomed.pid);
    const reuser: ChildProcess[] = [];
    try {
      expect(pinned.alive()).toBe(true);
      const planted = await pinned.listen('/run/d/s.sock');
      closeSync(planted.fd);
      await doomed.stop();
      expect(pinned.alive()).toBe(false);
      reuser.push(await hostProcessWithPid(doomed.pid));
      // The pid names a live host process now; the pin still says gone and refuses to act.
      expect(pinned.alive()).toBe(false);
      const refused = await failure(pinned.listen('/run/d/t.sock'));
      expect({ code: refused.code, syscall: refused.syscall }).toEqual({
        code: 'ESRCH',
        syscall: 'liveness',
      });
      expect(isGoneError(refused)).toBe(true);
      expect(await failure(pinned.connect('/run/d/s.sock'))).toMatchObject({ code: 'ESRCH' });
      // Cleanup still works, in the dead container's namespace (which the pin holds), not on the host.
      expect(await pinned.unlink('/run/d/s.sock', planted.ino)).toBe(true);
      // And pinning that pid again refuses the host process.
      expect(() => PinnedNamespace.pin(doomed.pid)).toThrow(
        expect.objectContaining({ code: 'EPERM', message: `pid ${doomed.pid} is not in a container` }),
      );
    } finally {
      pinned.release();
      for (const child of reuser) await killed(child);
      await doomed.stop();
    }
  });

  it('refuses a host process, and this process itself', async () => {
    const sleeper = spawn('sleep', ['1000'], { stdio: 'ignore' });
    try {
      for (const pid of [sleeper.pid as number, process.pid]) {
        expect(() => PinnedNamespace.pin(pid)).toThrow(
          expect.objectContaining({
            code: 'EPERM',
            syscall: 'pin',
            message: `pid ${pid} is not in a container`,
          }),
        );
      }
      expect(() => PinnedNamespace.pin(NO_SUCH_PID)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
    } finally {
      await killed(sleeper);
    }
  });
});

describe('pinned namespaces', () => {
  it('keep one worker thread for their whole life, ended on release', async () => {
    // Workers of pins released by earlier tests end on their own time.
    await eventually(() => workerThreads() === 0, PATIENCE_MS, 'released pins');
    const threadsBefore = workerThreads();
    const pinned = PinnedNamespace.pin(container.pid);
    const planted = await pinned.listen('/run/workers/s.sock');
    const server = await adopt(planted.fd, (socket) => socket.destroy());
    try {
      const fds = await Promise.all(Array.from({ length: 100 }, () => pinned.connect('/run/workers/s.sock')));
      for (const fd of fds) closeSync(fd);
      expect(workerThreads()).toBe(threadsBefore + 1);
    } finally {
      pinned.release();
      await closeServer(server);
    }
    await eventually(() => workerThreads() === threadsBefore, PATIENCE_MS, 'the worker to end');
    await expect(pinned.stat('/run')).rejects.toMatchObject({ code: 'EBADF' });
    expect(pinned.alive()).toBe(false);
  });

  it('end with a worker environment that still holds them, freed once (its handle finalized last)', async () => {
    // Pins released by earlier tests close their fds once their workers end.
    await eventually(() => pidfdCount() === 0 && workerThreads() === 0, PATIENCE_MS, 'released pins');
    // The build the binding loaded (the sanitizer run's, under `npm run test:asan`, which turns a use after free
    // at the environment's teardown into a failure of this file).
    const addon =
      process.env.PVX_NATIVE_ADDON ||
      join(import.meta.dirname, '..', '..', 'build', 'Release', 'pvx_native.node');
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const native = require(workerData.addon);
       // Held to the end: the environment's teardown, not a release, closes them. The port keeps the worker
       // running until it is terminated.
       parentPort.on('message', () => {});
       globalThis.pins = [native.pin(workerData.pid), native.pin(0)];
       native.statIn(globalThis.pins[0], '/run').then(() => parentPort.postMessage('ready'));`,
      { eval: true, workerData: { addon, pid: container.pid } },
    );
    try {
      expect(await once(worker, 'message')).toEqual(['ready']);
      // One per pin, each named by itself once it runs.
      await eventually(() => workerThreads() === 2 && pidfdCount() === 1, PATIENCE_MS, "the pins' workers");
    } finally {
      expect(await worker.terminate()).toBe(1);
    }
    await eventually(
      () => workerThreads() === 0 && pidfdCount() === 0,
      PATIENCE_MS,
      'the worker environment to release its pins',
    );
  });

  it('dial the host without a thread, and still refuse magic links there', async () => {
    const host = PinnedNamespace.pin(0);
    const dir = `/tmp/pvx-hostdial-${suffix}`;
    mkdirSync(dir, { recursive: true });
    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(`${dir}/s.sock`, resolve));
    // Workers of earlier tests' pins end, or (on a loaded machine) take their name late: count them once steady.
    const threadsBefore = await settled(workerThreads, 'the pin workers of earlier tests');
    try {
      closeSync(await host.connect(`${dir}/s.sock`));
      expect(workerThreads()).toBe(threadsBefore);
      const refused = await failure(host.connect(`/proc/self/root${dir}/s.sock`));
      expect(refused.code).toBe('ELOOP');
    } finally {
      host.release();
      await closeServer(server);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bound every operation: a late result is disposed of and the caller gets ETIMEDOUT', async () => {
    // Pins released by earlier tests close their fds once their workers end.
    await eventually(() => pidfdCount() === 0 && workerThreads() === 0, PATIENCE_MS, 'released pins');
    const fdsBefore = openFdCount();
    let finish: (fd: number) => void = () => {};
    const stuck = new Promise<number>((resolve) => {
      finish = resolve;
    });
    const timedOut = Object.assign(new Error('late'), { code: 'ETIMEDOUT' });
    await expect(withDeadline(stuck, 50, () => timedOut)).rejects.toBe(timedOut);
    // The operation finishes after all: its fd is closed, nobody leaks it.
    const [late] = [openSync('/dev/null', 'r')];
    finish(late as number);
    await eventually(() => openFdCount() === fdsBefore, PATIENCE_MS, 'the late fd closed');
  });
});

describe.each([
  { name: 'openat2(RESOLVE_NO_MAGICLINKS)', features: { openat2: true } },
  { name: 'the component walk (kernels before 5.6)', features: { openat2: false } },
])('magic links, refused by $name', ({ features }) => {
  /** A host directory with a live socket and a sentinel file; the attacks aim at them. */
  const hostDir = `/tmp/pvx-magic-${suffix}`;
  const sentinel = `${hostDir}/sentinel`;
  const sentinelBytes = `host file ${suffix}\n`;
  let hostServer: net.Server;
  let hostConnections = 0;
  let hostDirFd: number;
  /** A container whose /proc shows host processes (it shares the host's pid namespace). */
  let shared: Container;

  beforeAll(async () => {
    kernelFeatures(features);
    mkdirSync(hostDir, { recursive: true });
    writeFileSync(sentinel, sentinelBytes);
    hostServer = net.createServer((socket) => {
      hostConnections += 1;
      socket.destroy();
    });
    await new Promise<void>((resolve) => hostServer.listen(`${hostDir}/api.sock`, resolve));
    hostDirFd = openSync(hostDir, 'r');
    shared = await startContainer({
      sharedPid: true,
      privateTmp: true,
      setup: [
        'mkdir -p /run/l',
        `ln -s /proc/${process.pid}/root${hostDir} /run/l/root`,
        `ln -s /proc/${process.pid}/fd/${hostDirFd} /run/l/fd`,
        `ln -s /proc/self/root${hostDir} /run/l/self`,
        // A chain: an ordinary symlink to an ordinary symlink to the magic one.
        'ln -s /run/l/root /run/l/hop1 && ln -s /run/l/hop1 /run/l/hop2',
        'ln -s /run/l/loop /run/l/loop',
        'mkdir -p /run/ok && ln -s /run/ok /run/l/plain',
      ].join('\n'),
    });
  });

  afterAll(async () => {
    kernelFeatures({ openat2: true });
    await shared?.stop();
    closeSync(hostDirFd);
    await closeServer(hostServer);
    rmSync(hostDir, { recursive: true, force: true });
  });

  const magicPaths = () => [
    `/proc/${process.pid}/root${hostDir}`,
    `/proc/self/root${hostDir}`,
    `/proc/${process.pid}/fd/${hostDirFd}`,
    '/run/l/root',
    '/run/l/fd',
    '/run/l/self',
    '/run/l/hop2',
  ];

  it('the attack paths do lead to the host (control: the naive /proc/<pid>/root/<path> resolution)', async () => {
    // (Not the chain of ordinary symlinks: their absolute targets resolve on the host this way.)
    for (const dir of magicPaths().filter((path) => path !== '/run/l/hop2')) {
      const seen = readFileSync(`/proc/${shared.pid}/root${dir}/sentinel`, 'utf8');
      expect({ dir, seen }).toEqual({ dir, seen: sentinelBytes });
    }
    // And from inside the container itself, for the paths that do not name "self".
    const inside = await shared.exec(['cat', `/run/l/hop2/sentinel`, `/run/l/fd/sentinel`]);
    expect(inside.stdout).toBe(sentinelBytes.repeat(2));
  });

  it('refuses to dial, plant, mknod, stat, read or unlink through them; the host is untouched', async () => {
    const pinned = PinnedNamespace.pin(shared.pid);
    const { ino } = statSync(sentinel);
    try {
      for (const dir of magicPaths()) {
        const attempts: [string, Promise<unknown>][] = [
          ['connect', pinned.connect(`${dir}/api.sock`)],
          ['connect with credentials', pinned.connect(`${dir}/api.sock`, { uid: 0, gid: 0 })],
          ['resolveSocket', pinned.resolveSocket(`${dir}/api.sock`)],
          ['listen', pinned.listen(`${dir}/planted.sock`)],
          ['listen over the sentinel', pinned.listen(`${dir}/sentinel`)],
          ['mknod', pinned.mknod({ path: `${dir}/node`, mode: 0o666, major: 1, minor: 3, uid: 0, gid: 0 })],
          ['stat', pinned.stat(`${dir}/sentinel`)],
          ['readFile', pinned.readFile(`${dir}/sentinel`, 4096)],
          ['unlink', pinned.unlink(`${dir}/sentinel`, ino)],
        ];
        for (const [what, attempt] of attempts) {
          const error = await failure(attempt);
          expect({ dir, what, code: error.code }).toEqual({ dir, what, code: 'ELOOP' });
        }
      }
      expect(hostConnections).toBe(0);
      expect(readdirSync(hostDir).sort()).toEqual(['api.sock', 'sentinel']);
      expect(readFileSync(sentinel, 'utf8')).toBe(sentinelBytes);
      expect(statSync(sentinel).ino).toBe(ino);
    } finally {
      pinned.release();
    }
  });

  it('still follows ordinary symlinks inside the container, and fails a symlink loop clearly', async () => {
    const pinned = PinnedNamespace.pin(shared.pid);
    try {
      const planted = await pinned.listen('/run/l/plain/ok.sock');
      closeSync(planted.fd);
      expect(await pinned.stat('/run/ok/ok.sock')).toMatchObject({ type: 'socket', ino: planted.ino });
      const loop = await failure(pinned.connect('/run/l/loop/x.sock'));
      expect(loop.code).toBe('ELOOP');
      expect(loop.message).toMatch(/^connectIn \/run\/l\/loop\/x\.sock \(pid \d+\): ELOOP \(/);
    } finally {
      pinned.release();
    }
  });
});
