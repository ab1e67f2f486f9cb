// The drm mediator against Docker's default device cgroup, which denies devices it does not know: the node we
// plant opens in the consumer only because of the allow rule we write. The stand-in device is /dev/fuse's 10:229
// (harmless to open, not in Docker's default list), accepted through the documented PVX_DRM_EXTRA_MAJORS option.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Daemon } from '../../daemon/daemon.js';
import { parseCli } from '../../daemon/options.js';
import { mknodIn, statIn } from '../../native/namespace.js';
import { DockerRuntime } from '../../sim/runtime.js';
import { FakeCtrl } from '../../testkit/fake-ctrl.js';
import { eventually, graphEntry, PATIENCE_MS, startTestDaemon } from '../../testkit/mesh.js';

const NODE = '/dev/dri/renderD128';
const [MAJOR, MINOR] = [10, 229];
const instance = `drmtest${process.pid}`;

let runtime: DockerRuntime;
let work: string;
let ctrl: FakeCtrl;
const ids: string[] = [];
let provider = 0;
let consumer = 0;
let consumerId = '';
let daemon: Daemon | null = null;

async function startSleeper(name: string): Promise<string> {
  const id = await runtime.start({
    instance,
    name,
    command: ['sleep', 'infinity'],
    mounts: [{ source: '/usr', target: '/usr', readOnly: true }],
    env: {},
  });
  ids.push(id);
  return id;
}

function devicesList(pid: number): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8')
    .split('\n')
    .find((entry) => entry.split(':')[1]?.split(',').includes('devices'));
  const path = line?.split(':').slice(2).join(':');
  return readFileSync(`/sys/fs/cgroup/devices${path}/devices.list`, 'utf8');
}

/** Opens the node read-write inside the consumer (never in the daemon). */
const openInConsumer = () =>
  runtime.exec(consumerId, `exec 3<>${NODE} && echo opened`, 10).then((r) => `${r.stdout}${r.stderr}`.trim());

beforeAll(async () => {
  runtime = await DockerRuntime.connect();
  await runtime.ensureImage();
  const providerId = await startSleeper('gpu');
  consumerId = await startSleeper('app');
  provider = await runtime.pid(providerId);
  consumer = await runtime.pid(consumerId);
  await mknodIn({ pid: provider, path: NODE, mode: 0o666, major: MAJOR, minor: MINOR, uid: 0, gid: 0 });
  work = mkdtempSync(join(tmpdir(), 'pvx-drm-cgroup-'));
  ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
  await ctrl.start();
  ctrl.setGraph([graphEntry('drm', { pid: consumer }, { pid: provider }, { role: 'render', socket: NODE })]);
});

afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

afterAll(async () => {
  await ctrl?.stop();
  for (const id of ids) await runtime.remove(id);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('drm links and the device cgroup', () => {
  it('without the allow rule the planted node exists but cannot be opened (EPERM)', async () => {
    daemon = await startTestDaemon(ctrl, {
      settings: parseCli([], { PVX_DRM_EXTRA_MAJORS: String(MAJOR), PVX_DRM_DEVICE_CGROUP: 'off' }).settings,
    });
    expect(daemon.reconciler.list()[0]?.state).toBe('active');
    expect(await statIn({ pid: consumer, path: NODE })).toMatchObject({
      type: 'char',
      rdevMajor: MAJOR,
      rdevMinor: MINOR,
      mode: 0o666,
    });
    expect(await openInConsumer()).toMatch(/Operation not permitted/);
  });

  it('with the rule the consumer opens it; removing the link removes the node and revokes the rule', async () => {
    daemon = await startTestDaemon(ctrl, {
      settings: parseCli([], { PVX_DRM_EXTRA_MAJORS: String(MAJOR) }).settings,
    });
    expect(daemon.reconciler.list()[0]?.state).toBe('active');
    expect(devicesList(consumer)).toContain(`c ${MAJOR}:${MINOR} rw`);
    expect(await openInConsumer()).toBe('opened');

    ctrl.setGraph([]);
    await eventually(
      () =>
        statIn({ pid: consumer, path: NODE }).then(
          () => false,
          (error: NodeJS.ErrnoException) => error.code === 'ENOENT',
        ),
      PATIENCE_MS,
      'the node to go',
    );
    expect(devicesList(consumer)).not.toContain(`c ${MAJOR}:${MINOR}`);
  });

  it('a role the allow list does not name: the link fails, no node is planted, no rule is written', async () => {
    const before = devicesList(consumer);
    ctrl.setGraph([
      graphEntry(
        'drm',
        { pid: consumer },
        { pid: provider },
        { role: 'render', socket: NODE, allow: ['master'] },
      ),
    ]);
    daemon = await startTestDaemon(ctrl, {
      settings: parseCli([], { PVX_DRM_EXTRA_MAJORS: String(MAJOR) }).settings,
    });
    const [link] = daemon.reconciler.list();
    expect(link?.state).toBe('failed');
    expect(link?.error).toBe("role 'render' is not allowed by svc/drm");
    // Over a few polls (the mediator's check hook would run on each for an active link) nothing appears.
    const polls = daemon.graph().polls;
    await eventually(
      () => daemon !== null && daemon.graph().polls >= polls + 3,
      PATIENCE_MS,
      'three more polls',
    );
    expect(daemon.reconciler.list()[0]?.state).toBe('failed');
    expect(
      await statIn({ pid: consumer, path: NODE }).catch((error: NodeJS.ErrnoException) => error.code),
    ).toBe('ENOENT');
    expect(devicesList(consumer)).toBe(before);
    expect(devicesList(consumer)).not.toContain(`c ${MAJOR}:${MINOR}`);
  });
});
