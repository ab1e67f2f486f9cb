// The daemon's pins (daemon/plumbing.ts): shared per live process, swept for liveness, never reused once gone.
import { closeSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { hostNamespace, Pins } from '../../daemon/plumbing.js';
import type { Namespace } from '../../mediators/types.js';
import { startContainer } from '../../testkit/container.js';
import { eventually, PATIENCE_MS } from '../../testkit/mesh.js';

function workerThreads(): number {
  return readdirSync('/proc/self/task').filter((tid) => {
    try {
      return readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === 'pvx-ns';
    } catch {
      return false;
    }
  }).length;
}

describe('Pins', () => {
  it('share one pin (one worker) among the leases on one process, and end it with the last lease', async () => {
    const container = await startContainer();
    const pins = new Pins();
    const before = workerThreads();
    try {
      const gone: string[] = [];
      const first = pins.lease(container.pid, 'consumer', () => gone.push('first'));
      const second = pins.lease(container.pid, 'provider', () => gone.push('second'));
      await first.namespace.stat('/run');
      await second.namespace.stat('/run');
      expect({ pins: pins.size, workers: workerThreads() - before }).toEqual({ pins: 1, workers: 1 });
      first.release();
      first.release(); // idempotent
      await second.namespace.stat('/run');
      expect(pins.size).toBe(1);
      second.release();
      expect(pins.size).toBe(0);
      await eventually(() => workerThreads() === before, PATIENCE_MS, 'the worker to end');
      expect(gone).toEqual([]);
    } finally {
      await container.stop();
    }
  });

  it('tell every lease once when the process is gone, and pin that pid afresh afterwards', async () => {
    const container = await startContainer();
    const pins = new Pins();
    const gone: string[] = [];
    const consumer = pins.lease(container.pid, 'consumer', () => gone.push('consumer'));
    const provider = pins.lease(container.pid, 'provider', () => gone.push('provider'));
    try {
      expect(await consumer.namespace.readProcessFile('cgroup', 65536)).toMatch(/^\d+:/m);
      pins.sweep();
      expect(gone).toEqual([]);
      await container.stop();
      pins.sweep();
      pins.sweep();
      expect(gone).toEqual(['consumer', 'provider']);
      expect(pins.size).toBe(0);
      // Gone means gone: operations fail (errors say which end), /proc/<pid> is not read for it any more.
      await expect(provider.namespace.connect('/run/x.sock')).rejects.toMatchObject({
        code: 'ESRCH',
        end: 'provider',
      });
      await expect(consumer.namespace.readProcessFile('cgroup', 65536)).rejects.toMatchObject({
        code: 'ESRCH',
        end: 'consumer',
      });
      // A new lease of that pid pins again: no such process now.
      expect(() => pins.lease(container.pid, 'consumer', () => {})).toThrow(
        expect.objectContaining({ code: 'ESRCH' }),
      );
    } finally {
      consumer.release();
      provider.release();
      await container.stop();
    }
  });

  it('refuse a host process, and read /proc files only of containers, by plain name', async () => {
    const pins = new Pins();
    expect(() => pins.lease(process.pid, 'provider', () => {})).toThrow(
      expect.objectContaining({ code: 'EPERM', message: `pid ${process.pid} is not in a container` }),
    );
    const host = pins.lease(0, 'consumer', () => {});
    const container = await startContainer();
    const inside = pins.lease(container.pid, 'consumer', () => {});
    try {
      await expect(host.namespace.readProcessFile('cgroup', 65536)).rejects.toThrow(/only \/proc\/<pid>/);
      await expect(inside.namespace.readProcessFile('../1/environ', 65536)).rejects.toThrow(
        /only \/proc\/<pid>/,
      );
      await expect(inside.namespace.readProcessFile('cgroup', 2)).rejects.toThrow(/over 2 bytes/);
    } finally {
      host.release();
      inside.release();
      await container.stop();
    }
  });

  describe('a link end dialling its socket', () => {
    /** A server (on the listening fd `fd`, or at a host path) that answers every connection with `name`. */
    async function answering(where: number | string, name: string): Promise<net.Server> {
      const server = net.createServer((socket) => {
        socket.on('error', () => {}); // a dialler that closes at once
        socket.end(name);
      });
      await new Promise<void>((resolve) =>
        server.listen(typeof where === 'number' ? { fd: where } : where, resolve),
      );
      return server;
    }

    /** What the socket `namespace` dials at `path` answers. */
    async function answerAt(namespace: Namespace, path: string): Promise<string> {
      const socket = new net.Socket({ fd: await namespace.connect(path), readable: true, writable: true });
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      await new Promise((resolve) => socket.once('close', resolve));
      return Buffer.concat(chunks).toString();
    }

    const openFds = () => readdirSync('/proc/self/fd');

    it('keeps the socket the path named: no path walk per dial, a replaced socket found again, closed with the lease', async () => {
      const container = await startContainer();
      const pins = new Pins();
      const provider = pins.lease(container.pid, 'provider', () => {});
      const path = '/run/svc/s.sock';
      /** This process's open files in the container's socket directory. */
      const socketFiles = () =>
        openFds().filter((fd) => {
          try {
            return readlinkSync(`/proc/self/fd/${fd}`).startsWith('/run/svc/');
          } catch {
            return false; // closed meanwhile
          }
        });
      let first: net.Server | null = null;
      let second: net.Server | null = null;
      try {
        first = await answering((await provider.namespace.listen(path, 0o600)).fd, 'first');
        expect(await answerAt(provider.namespace, path)).toBe('first');
        // Moved away inside the container, the socket is still the one dialled: the path is not walked again.
        await container.exec(['mv', path, '/run/svc/moved.sock']);
        expect(await answerAt(provider.namespace, path)).toBe('first');
        // Once it stops listening, the path is resolved afresh and leads to its new socket.
        await new Promise((resolve) => first?.close(resolve));
        first = null;
        second = await answering((await provider.namespace.listen(path, 0o600)).fd, 'second');
        expect(await answerAt(provider.namespace, path)).toBe('second');
        expect(await answerAt(provider.namespace, path)).toBe('second');
        // Nothing listens at a path: refused, as a dial without a kept socket is.
        await expect(provider.namespace.connect('/run/svc/moved.sock')).rejects.toMatchObject({
          code: 'ECONNREFUSED',
          end: 'provider',
        });
        await new Promise((resolve) => second?.close(resolve));
        second = null;
        // One file of the socket directory is left open of all the dials: the socket kept (O_PATH), which goes
        // with the lease.
        expect(socketFiles().length).toBe(1);
        provider.release();
        expect(socketFiles()).toEqual([]);
      } finally {
        first?.close();
        second?.close();
        provider.release();
        await container.stop();
      }
    });

    it('keeps nothing for the process-wide host namespace', async () => {
      const path = `/tmp/pvx-plumbing-${process.pid}.sock`;
      const server = await answering(path, 'host');
      try {
        const host = hostNamespace();
        closeSync(await host.connect(path)); // the first dial of a namespace may open its host root once
        const fdsBefore = openFds().length;
        for (let i = 0; i < 3; i += 1) expect(await answerAt(host, path)).toBe('host');
        await eventually(() => openFds().length === fdsBefore, PATIENCE_MS, 'no fd kept');
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  });
});
