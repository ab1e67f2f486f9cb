// The daemon's pins (daemon/plumbing.ts): shared per live process, swept for liveness, never reused once gone.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Pins } from '../../daemon/plumbing.js';
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
});
