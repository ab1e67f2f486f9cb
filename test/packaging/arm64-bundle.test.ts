// The arm64 device bundle, run as on a device: `npm run bundle -- arm64`, unpacked; its daemon runs on its own
// arm64 Node.js under qemu-aarch64-static (-L: Debian's aarch64 cross libc), with the V8 flags and exactly the
// capability bounding set and no_new_privs of its systemd unit (setpriv). It reads a graph from a fake pv-ctrl,
// plants a unix link between two namespaces (and a dbus link under a narrowing policy, which needs the bundle's
// match-rule grammar), relays bytes and an fd, tells NOTIFY_SOCKET it is ready, and exits 0
// on SIGTERM with the link removed. On this x86_64 machine its launcher refuses to start, in one line.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statIn } from '../../native/namespace.js';
import { unpackedBundle, VERSION } from '../../testkit/bundle.js';
import { type Container, startContainer } from '../../testkit/container.js';
import { runDaemon, runToEnd, startNotifySocket } from '../../testkit/daemon-process.js';
import { FakeCtrl } from '../../testkit/fake-ctrl.js';
import {
  closeAll,
  connectFrom,
  contentOf,
  eventually,
  fileWithContent,
  graphEntry,
  type Provider,
  readBytes,
  startProvider,
} from '../../testkit/mesh.js';

const PROVIDER_SOCKET = '/run/p/echo.sock';
const TARGET = '/run/pv/services/echo.sock';
const BUS_TARGET = '/run/pv/services/bus.sock';

let work: string;
let bundle: string;
let unit: string;

/** One setting of the unit's [Service] section. */
function unitSetting(key: string): string {
  const line = unit.split('\n').find((entry) => entry.startsWith(`${key}=`));
  if (!line) throw new Error(`the unit has no ${key}=`);
  return line.slice(key.length + 1);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-arm64-bundle-'));
  bundle = await unpackedBundle('arm64', work);
  unit = readFileSync(join(bundle, 'systemd', 'pv-xconnect.service'), 'utf8');
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the arm64 bundle', () => {
  it('holds the launcher, the daemon, its aarch64 addon, the arm64 Node.js and the unit', async () => {
    const elf = (path: string) => readFileSync(join(bundle, path)).subarray(0, 20);
    // ELF, 64-bit, e_machine 183 (AArch64).
    for (const binary of ['node/bin/node', 'prebuilds/linux-arm64/pvx_native.node']) {
      const header = elf(binary);
      expect(header.subarray(0, 4).toString('latin1'), binary).toBe('\x7fELF');
      expect(header[4], binary).toBe(2);
      expect(header.readUInt16LE(18), binary).toBe(183);
    }
    expect(readFileSync(join(bundle, 'bin', 'pv-xconnect'), 'utf8')).toMatch(/^#!\/bin\/sh\n/);
    expect(JSON.parse(readFileSync(join(bundle, 'package.json'), 'utf8'))).toMatchObject({
      version: VERSION,
    });
  });

  it('its launcher refuses this x86_64 machine in one line, exit 1', async () => {
    const launched = await runToEnd(join(bundle, 'bin', 'pv-xconnect'), ['--version']);
    expect(launched.code).toBe(1);
    expect(launched.stdout).toBe('');
    expect(launched.stderr).toBe(
      'pv-xconnect: this bundle is for linux-arm64 (aarch64, arm64), this machine is x86_64\n',
    );
  });

  it('its unit passes systemd-analyze verify', async () => {
    // Verified where it is unpacked: ExecStart must name an executable that exists.
    const here = join(work, 'pv-xconnect.service');
    writeFileSync(here, unit.replaceAll('/opt/pv-xconnect/', `${bundle}/`));
    const verified = await runToEnd('systemd-analyze', ['verify', here]);
    expect(verified.stderr).toBe('');
    expect(verified.code).toBe(0);
    expect(unitSetting('Type')).toBe('notify');
    expect(unitSetting('Restart')).toBe('on-failure');
  });
});

describe('the arm64 daemon under qemu-aarch64, confined as its unit says', () => {
  let ctrl: FakeCtrl;
  let P: Container;
  let C: Container;
  let provider: Provider;

  beforeAll(async () => {
    ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
    await ctrl.start();
    [P, C] = await Promise.all([startContainer({ privateTmp: true }), startContainer({ privateTmp: true })]);
    provider = await startProvider(P.pid, PROVIDER_SOCKET);
  });

  afterAll(async () => {
    provider.close();
    await Promise.all([P.stop(), C.stop(), ctrl.stop()]);
  });

  it('reads the graph, plants the link, relays bytes and an fd, READY=1, exits 0 on SIGTERM', async () => {
    const manager = await startNotifySocket(join(work, 'notify'));
    // CapabilityBoundingSet=CAP_SYS_ADMIN CAP_MKNOD … → setpriv's -all,+sys_admin,+mknod,…
    const capabilities = unitSetting('CapabilityBoundingSet')
      .split(' ')
      .map((name) => `+${name.replace(/^CAP_/, '').toLowerCase()}`);
    expect(unitSetting('NoNewPrivileges')).toBe('yes');
    const flags = /^"PVX_NODE_FLAGS=(.*)"$/.exec(unitSetting('Environment'))?.[1]?.split(' ') ?? [];
    expect(flags.length).toBeGreaterThan(0);
    // A dbus link whose policy narrows its role comes up only once the bundle's match-rule grammar is loaded.
    ctrl.setGraph([
      graphEntry('unix', C, P, { name: 'echo', socket: PROVIDER_SOCKET, target: TARGET }),
      graphEntry('dbus', C, P, {
        name: 'bus',
        role: 'root',
        socket: PROVIDER_SOCKET,
        target: BUS_TARGET,
        allow: [{ role: 'root', members: ['Get'] }],
      }),
    ]);
    const daemon = runDaemon(
      [
        'setpriv',
        '--no-new-privs',
        '--inh-caps=-all',
        `--bounding-set=-all,${capabilities.join(',')}`,
        '--',
        'qemu-aarch64-static',
        '-L',
        '/usr/aarch64-linux-gnu',
        join(bundle, 'node', 'bin', 'node'),
        ...flags,
        join(bundle, 'lib', 'pv-xconnect.mjs'),
        '--ctrl-socket',
        ctrl.socketPath,
        '--interval',
        '0.5',
        '--status-socket',
        'none',
      ],
      { NOTIFY_SOCKET: manager.address },
    );
    try {
      await eventually(() => manager.received() === 'READY=1', 60_000, `READY=1 (${daemon.output()})`);
      expect((await statIn({ pid: C.pid, path: TARGET })).type).toBe('socket');
      await eventually(
        () => statIn({ pid: C.pid, path: BUS_TARGET }).then(({ type }) => type === 'socket'),
        60_000,
        `the narrowed dbus link (${daemon.output()})`,
      );
      const client = await connectFrom(C.pid, TARGET);
      client.write(Buffer.from('ping'), [fileWithContent('through the arm64 daemon')]);
      const echoed = await readBytes(client, 4);
      expect(echoed.data.toString()).toBe('ping');
      expect(echoed.fds.map(contentOf)).toEqual(['through the arm64 daemon']);
      closeAll(echoed.fds);
      client.destroy();
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited, daemon.output()).toBe(0);
      expect(manager.received()).toBe('READY=1STOPPING=1');
      await expect(statIn({ pid: C.pid, path: TARGET })).rejects.toThrow(/ENOENT/);
    } finally {
      daemon.child.kill('SIGKILL');
      await manager.close();
    }
  }, 120_000);
});
