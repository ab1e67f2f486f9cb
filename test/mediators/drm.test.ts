// The drm mediator with real namespaces: nodes are stat'ed in the provider and created in the consumer.
// (The device-cgroup proof with Docker's default device policy is in drm-cgroup.test.ts.)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../daemon/daemon.js';
import { allowsCharDevice } from '../../mediators/device-cgroup.js';
import { drmNodeKind } from '../../mediators/drm.js';
import { mknodIn, statIn } from '../../native/namespace.js';
import { type Container, startContainer } from '../../testkit/container.js';
import { FakeCtrl } from '../../testkit/fake-ctrl.js';
import { eventually, type GraphEntry, graphEntry, PATIENCE_MS, startTestDaemon } from '../../testkit/mesh.js';

const INTERVAL_MS = 200;
let work: string;
let ctrl: FakeCtrl;
let P: Container;
let C: Container;
let daemon: Daemon | null = null;

function drmLink(overrides: Partial<GraphEntry>): GraphEntry {
  return graphEntry('drm', C, P, {
    name: 'drm-render',
    role: 'render',
    socket: '/run/dri/renderD128',
    ...overrides,
  });
}

async function startDaemon(): Promise<Daemon> {
  daemon = await startTestDaemon(ctrl, { intervalMs: INTERVAL_MS });
  return daemon;
}

const absent = (pid: number, path: string) =>
  statIn({ pid, path }).then(
    () => false,
    (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
  );

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-drm-'));
  ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
  await ctrl.start();
  // The consumer has its own /etc/group with a render group; the provider's nodes live on its private /run.
  writeFileSync(join(work, 'group'), 'root:x:0:\nvideo:x:44:\nrender:x:109:app\n');
  P = await startContainer({
    setup: 'mkdir -p /run/dri && touch /run/dri/regular && ln -s /dev/null /run/dri/renderD130',
  });
  C = await startContainer({ setup: `mount --bind ${join(work, 'group')} /etc/group` });
  const node = { pid: P.pid, uid: 0, gid: 0, mode: 0o660 };
  await mknodIn({ ...node, path: '/run/dri/card0', major: 226, minor: 0 });
  await mknodIn({ ...node, path: '/run/dri/renderD128', major: 226, minor: 128 });
  await mknodIn({ ...node, path: '/run/dri/block', major: 7, minor: 0, type: 'block' });
  await mknodIn({ ...node, path: '/run/dri/renderD131', major: 1, minor: 5 });
});

afterEach(async () => {
  await daemon?.stop();
  daemon = null;
  ctrl.setGraph([]);
});

afterAll(async () => {
  await Promise.all([P.stop(), C.stop(), ctrl.stop()]);
  rmSync(work, { recursive: true, force: true });
});

describe('drm links', () => {
  it('recreates a render node in the consumer with its numbers, mode and the consumer render group', async () => {
    ctrl.setGraph([drmLink({})]);
    const running = await startDaemon();
    expect(running.reconciler.list()[0]).toMatchObject({ state: 'active', error: null });
    const node = await statIn({ pid: C.pid, path: '/run/dri/renderD128' });
    expect(node).toMatchObject({
      type: 'char',
      rdevMajor: 226,
      rdevMinor: 128,
      mode: 0o660,
      uid: 0,
      gid: 109,
    });
  });

  it('gives a card node to the master role, grouped by the provider gid when the consumer has no video group', async () => {
    const C2 = await startContainer({
      setup: `printf 'root:x:0:\\n' > ${join(work, 'group2')} && mount --bind ${join(work, 'group2')} /etc/group`,
    });
    try {
      ctrl.setGraph([
        drmLink({ consumer_pid: C2.pid, name: 'drm-master', role: 'master', socket: '/run/dri/card0' }),
      ]);
      const running = await startDaemon();
      expect(running.reconciler.list()[0]?.state).toBe('active');
      expect(await statIn({ pid: C2.pid, path: '/run/dri/card0' })).toMatchObject({
        rdevMajor: 226,
        rdevMinor: 0,
        gid: 0,
      });
    } finally {
      await daemon?.stop();
      daemon = null;
      await C2.stop();
    }
  });

  it.each([
    [
      'role render with a card node',
      { socket: '/run/dri/card0' },
      "role 'render' may only get a render node",
    ],
    ['role master with a render node', { role: 'master' }, "role 'master' may only get a card node"],
    ['a block device', { role: 'any', socket: '/run/dri/block' }, 'is a block, not a character device'],
    ['a regular file', { role: 'any', socket: '/run/dri/regular' }, 'is a file, not a character device'],
    ['a symlink to a host device', { socket: '/run/dri/renderD130' }, 'is a symlink, not a character device'],
    ['a non-DRM major without the test option', { socket: '/run/dri/renderD131' }, 'has major 1'],
    ['a missing node', { socket: '/run/dri/renderD199' }, 'ENOENT'],
  ])('fails %s and creates nothing', async (_label, overrides, message) => {
    const link = drmLink(overrides);
    ctrl.setGraph([link]);
    const running = await startDaemon();
    const [state] = running.reconciler.list();
    expect(state?.state).toBe('failed');
    expect(state?.error).toContain(message);
    expect(await absent(C.pid, link.socket)).toBe(true);
  });

  it('removes the node with the link, and follows the provider node disappearing and coming back', async () => {
    await mknodIn({
      pid: P.pid,
      path: '/run/dri/renderD129',
      mode: 0o666,
      major: 226,
      minor: 129,
      uid: 0,
      gid: 0,
    });
    ctrl.setGraph([drmLink({ socket: '/run/dri/renderD129' })]);
    const running = await startDaemon();
    expect(await statIn({ pid: C.pid, path: '/run/dri/renderD129' })).toMatchObject({ rdevMinor: 129 });

    // The provider's node goes: the consumer's goes at the next reconcile.
    await P.exec(['rm', '/run/dri/renderD129']);
    await eventually(() => absent(C.pid, '/run/dri/renderD129'), PATIENCE_MS, 'the node to go');
    await eventually(() => running.reconciler.list()[0]?.state === 'failed', PATIENCE_MS, 'the link to fail');
    expect(running.reconciler.list()[0]?.error).toContain('ENOENT');

    // It comes back with other numbers: the link follows (retried with backoff from 200 ms).
    await mknodIn({
      pid: P.pid,
      path: '/run/dri/renderD129',
      mode: 0o666,
      major: 226,
      minor: 130,
      uid: 0,
      gid: 0,
    });
    await eventually(
      async () => (await statIn({ pid: C.pid, path: '/run/dri/renderD129' })).rdevMinor === 130,
      PATIENCE_MS,
      'the node to return',
    );

    ctrl.setGraph([]);
    await eventually(() => absent(C.pid, '/run/dri/renderD129'), PATIENCE_MS, 'removal with the link');
  });
});

describe('drm helpers', () => {
  it('tells the node kind from DRM minors, and from the name only for stand-in majors', () => {
    expect(drmNodeKind('/dev/dri/card0', 226, 0)).toBe('card');
    expect(drmNodeKind('/dev/dri/renderD128', 226, 128)).toBe('render');
    // The device wins over a misleading name.
    expect(drmNodeKind('/dev/dri/renderD128', 226, 1)).toBe('card');
    expect(drmNodeKind('/dev/dri/x', 226, 200)).toBeNull();
    expect(drmNodeKind('/dev/dri/renderD128', 1, 5)).toBe('render');
    expect(drmNodeKind('/dev/null', 1, 3)).toBeNull();
  });

  it('reads device cgroup v1 lists', () => {
    expect(allowsCharDevice('a *:* rwm\n', 226, 128)).toBe(true);
    expect(allowsCharDevice('c 1:5 rwm\nc 136:* rwm\n', 1, 5)).toBe(true);
    expect(allowsCharDevice('c 1:5 rwm\nc *:* m\n', 226, 128)).toBe(false);
    expect(allowsCharDevice('c 226:128 r\n', 226, 128)).toBe(false);
  });
});
