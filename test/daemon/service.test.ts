// pv-xconnect as a service: readiness and stop notifications (NOTIFY_SOCKET, path and abstract), --version, and
// the one-line refusal of a Node.js older than the supported LTS lines. The daemon runs as its own process.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDaemon, startNotifySocket } from '../../testkit/daemon-process.js';
import { FakeCtrl } from '../../testkit/fake-ctrl.js';
import { eventually } from '../../testkit/mesh.js';

const cli = join(import.meta.dirname, '..', '..', 'dist', 'daemon', 'cli.js');
const version = (
  JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as {
    version: string;
  }
).version;
let work: string;
let ctrl: FakeCtrl;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-service-'));
  ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
  await ctrl.start();
});

afterAll(async () => {
  await ctrl.stop();
  rmSync(work, { recursive: true, force: true });
});

const daemonArgs = () => [
  cli,
  '--ctrl-socket',
  ctrl.socketPath,
  '--interval',
  '0.1',
  '--status-socket',
  'none',
];

describe('NOTIFY_SOCKET', () => {
  for (const kind of ['path', 'abstract'] as const) {
    it(`READY=1 only once a graph has been applied, STOPPING=1 on SIGTERM (${kind} socket)`, async () => {
      const address = kind === 'path' ? join(work, 'notify') : `@pvx-notify-${process.pid}-${Date.now()}`;
      const manager = await startNotifySocket(address);
      // pv-ctrl still booting: it answers 500, so nothing has been applied.
      ctrl.setAnswer({ status: 500, body: 'State not loaded yet' });
      const polled = ctrl.requests;
      const daemon = runDaemon([process.execPath, ...daemonArgs()], { NOTIFY_SOCKET: address });
      try {
        await eventually(() => ctrl.requests >= polled + 3, 10_000, 'three polls');
        expect(manager.received()).toBe('');
        ctrl.setGraph([]);
        await eventually(() => manager.received() === 'READY=1', 10_000, 'READY=1');
        daemon.child.kill('SIGTERM');
        expect(await daemon.exited).toBe(0);
        await eventually(() => manager.received() === 'READY=1STOPPING=1', 5000, 'STOPPING=1');
      } finally {
        daemon.child.kill('SIGKILL');
        await manager.close();
      }
    });
  }

  it('a notification that cannot be delivered is a warning, the daemon runs on', async () => {
    ctrl.setGraph([]);
    const daemon = runDaemon([process.execPath, ...daemonArgs()], { NOTIFY_SOCKET: join(work, 'nobody') });
    await eventually(
      () => daemon.output().includes('service manager notification failed'),
      10_000,
      'warning',
    );
    expect(daemon.output()).toContain('ENOENT');
    daemon.child.kill('SIGTERM');
    expect(await daemon.exited).toBe(0);
  });
});

describe('the command line', () => {
  it('--version prints the package version', async () => {
    const daemon = runDaemon([process.execPath, cli, '--version']);
    expect(await daemon.exited).toBe(0);
    expect(daemon.output()).toBe(`${version}\n`);
  });

  it('a Node.js older than 22 is refused in one line, exit 1', async () => {
    // Node 21 as far as the daemon can tell: process.versions rewritten before the CLI loads.
    const older = `Object.defineProperty(process, 'versions', { value: { ...process.versions, node: '21.7.3' } });`;
    const daemon = runDaemon([
      process.execPath,
      '--import',
      `data:text/javascript,${encodeURIComponent(older)}`,
      ...daemonArgs(),
    ]);
    expect(await daemon.exited).toBe(1);
    expect(daemon.output()).toMatch(
      /^pv-xconnect: Node\.js v\S+ is not supported: it needs Node\.js 22 or newer\n$/,
    );
  });
});
