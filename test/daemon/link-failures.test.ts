// What the daemon does with a link that fails: a configuration mistake (here an identity HTTP cannot carry) stays
// failed without retries until the link's spec changes; a transient failure (a provider socket not there yet) is
// retried with backoff and recovers by itself; a connection whose provider cannot be dialled is counted in the
// status API. Host-side links against sockets served from this process.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../daemon/daemon.js';
import type { Fields } from '../../log/logger.js';
import { FakeCtrl } from '../../testkit/fake-ctrl.js';
import {
  connectFrom,
  eventually,
  graphEntry,
  PATIENCE_MS,
  type Provider,
  readToEnd,
  recordingLogger,
  startProvider,
  startTestDaemon,
} from '../../testkit/mesh.js';

let work: string;
let ctrl: FakeCtrl;
let daemon: Daemon;
const providers: Provider[] = [];
const logs: Fields[] = [];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-link-failures-'));
  ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
  await ctrl.start();
});

afterAll(async () => {
  await daemon?.stop();
  for (const provider of providers) provider.close();
  await ctrl?.stop();
  rmSync(work, { recursive: true, force: true });
});

const failures = (name: string) => logs.filter((line) => line.event === 'link failed' && line.link === name);
const state = (name: string) => daemon.reconciler.list().find((link) => link.spec.name === name);

describe('a failed link', () => {
  it('is retried when the failure may pass, and left failed until its spec changes when it cannot', async () => {
    const web = join(work, 'web.sock');
    providers.push(await startProvider(0, web));
    const later = join(work, 'later.sock');
    const rest = (role: string) =>
      graphEntry('rest', null, null, {
        name: 'web',
        role,
        socket: web,
        target: join(work, 'web-target.sock'),
      });
    const unix = graphEntry('unix', null, null, {
      name: 'later',
      socket: later,
      target: join(work, 'later-target.sock'),
    });
    ctrl.setGraph([rest('bad\u0001role'), unix]);
    daemon = await startTestDaemon(ctrl, {
      intervalMs: 100,
      statusSocket: join(work, 'status.sock'),
      limits: { retryBaseMs: 10, retryMaxMs: 40 },
      log: recordingLogger(logs),
    });

    // The unreachable provider is retried, again and again, while the identity mistake was tried once.
    await eventually(() => failures('later').length >= 4, PATIENCE_MS, 'retries of the transient failure');
    expect(failures('web')).toHaveLength(1);
    expect(failures('web')[0]).toMatchObject({ retry: false });
    expect(failures('later').every((line) => typeof line.retryInMs === 'number')).toBe(true);
    expect(state('web')).toMatchObject({ state: 'failed' });
    expect(state('web')?.error).toMatch(/^the link's identity cannot be sent in HTTP/);

    // The transient failure passes by itself once the provider is there.
    providers.push(await startProvider(0, later));
    await eventually(() => state('later')?.state === 'active', PATIENCE_MS, 'the retried link to come up');
    expect(state('web')?.state).toBe('failed');
    expect(failures('web')).toHaveLength(1);

    // A new spec is a new attempt.
    ctrl.setGraph([rest('reader'), unix]);
    await eventually(() => state('web')?.state === 'active', PATIENCE_MS, 'the corrected link to come up');
  });

  it('counts the connections it had to close because the provider could not be dialled', async () => {
    const provider = providers.at(-1) as Provider;
    provider.close(); // the 'later' link's provider: its socket file stays, nobody listens any more
    const client = await connectFrom(0, join(work, 'later-target.sock'));
    await readToEnd(client);
    await eventually(() => state('later')?.counters.connections.failed === 1, PATIENCE_MS, 'the failed dial');
    const later = JSON.parse(await get('/links')).find((link: { name: string }) => link.name === 'later');
    expect(later.connections).toEqual({ active: 0, total: 1, failed: 1 });
    expect(await get('/metrics')).toMatch(/^pvx_link_connections_failed_total\{[^}]*name="later"[^}]*\} 1$/m);
  });
});

function get(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ socketPath: join(work, 'status.sock'), path }, (res) => {
      let body = '';
      res.on('data', (part) => {
        body += part;
      });
      res.on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });
}
