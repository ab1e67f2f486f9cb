// The common frame of daemon tests: a fake pv-ctrl in a temporary directory for the whole file, an in-process
// daemon per test, and cleanups run after each test (last registered, first run). Registers the vitest hooks.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { Daemon, DaemonOptions } from '../daemon/daemon.js';
import { FakeCtrl } from './fake-ctrl.js';
import { startTestDaemon } from './mesh.js';

export interface Testbed {
  readonly work: string;
  readonly ctrl: FakeCtrl;
  /** Runs after the current test (before the daemon stops being this test's). */
  defer(cleanup: () => Promise<unknown> | unknown): void;
  /** The daemon of the current test (stopped after it). */
  startDaemon(options?: Partial<Omit<DaemonOptions, 'ctrlSocket'>>): Promise<Daemon>;
}

export function daemonTestbed(name: string, intervalMs: number): Testbed {
  let work = '';
  let ctrl: FakeCtrl | null = null;
  let daemon: Daemon | null = null;
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), `pvx-${name}-`));
    ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
    await ctrl.start();
  });
  afterEach(async () => {
    await daemon?.stop();
    daemon = null;
    ctrl?.setGraph([]);
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    await ctrl?.stop();
    rmSync(work, { recursive: true, force: true });
  });
  const bed: Testbed = {
    get work() {
      return work;
    },
    get ctrl() {
      if (!ctrl) throw new Error('the testbed is not up yet');
      return ctrl;
    },
    defer: (cleanup) => cleanups.push(cleanup),
    startDaemon: async (options = {}) => {
      await daemon?.stop();
      daemon = await startTestDaemon(bed.ctrl, { intervalMs, ...options });
      return daemon;
    },
  };
  return bed;
}

/** GET `path` from the status API at `socketPath`: status and body. */
export function getStatus(socketPath: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ socketPath, path }, (res) => {
      let body = '';
      res.on('data', (part) => {
        body += part;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
}
