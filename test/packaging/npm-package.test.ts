// The npm package as a user gets it: `npm pack` of a copy of this checkout (prepack cross-builds the prebuilt addons,
// prepare compiles the TypeScript), then `npm install -g` of that tarball into a fresh prefix with nothing but node
// and npm on PATH: no compiler, no make, no python. The installed commands then run, and the installed daemon
// relays through the prebuilt addon.
import { cpSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, VERSION } from '../../testkit/bundle.js';
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

/** What a checkout has that a copy to pack from must not: the copy builds its own. */
const NOT_COPIED = new Set(['node_modules', 'dist', 'build', 'prebuilds', 'bundles', '.git']);

let work: string;
let prefix: string;
let bareEnv: Record<string, string>;
let files: string[];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-npm-package-'));
  const source = join(work, 'source');
  cpSync(ROOT, source, { recursive: true, filter: (path) => !NOT_COPIED.has(path.split('/').pop() ?? '') });
  symlinkSync(join(ROOT, 'node_modules'), join(source, 'node_modules'));
  const packed = await runToEnd('npm', ['pack', '--silent', '--pack-destination', work], { cwd: source });
  expect(packed.code, packed.stderr).toBe(0);
  const tarball = join(work, `pv-xconnect-${VERSION}.tgz`);
  files = (await runToEnd('tar', ['-tzf', tarball])).stdout.split('\n').filter(Boolean);

  // PATH: node, npm and sh only. The rest of the environment stays (the registry may need a proxy), less npm's own
  // settings of the `npm test` that runs this.
  const bin = join(work, 'bin');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  symlinkSync(realpathSync((await runToEnd('sh', ['-c', 'command -v npm'])).stdout.trim()), join(bin, 'npm'));
  symlinkSync('/bin/sh', join(bin, 'sh'));
  bareEnv = Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] => !entry[0].startsWith('npm_') && entry[1] !== undefined,
    ),
  );
  bareEnv.PATH = bin;
  prefix = join(work, 'prefix');
  const installed = await runToEnd(
    'npm',
    ['install', '-g', '--prefix', prefix, '--prefer-offline', tarball],
    {
      env: bareEnv,
    },
  );
  expect(installed.code, installed.stderr).toBe(0);
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npm pack', () => {
  it('packs the compiled daemon and simulator, both prebuilt addons, stacks, tools and docs; no tests or sources', () => {
    const inPackage = (path: string) => files.some((file) => file.startsWith(`package/${path}`));
    for (const part of [
      'dist/daemon/cli.js',
      'dist/sim/cli.js',
      'prebuilds/linux-x64/pvx_native.node',
      'prebuilds/linux-arm64/pvx_native.node',
      'sim/stacks/showcase/',
      'protocols/dbus/grammar/match-rule.ebnf',
      'protocols/dbus/grammar/names.ebnf',
      'sim/base-etc/passwd',
      'sim/web/index.html',
      'sim/web/app.js',
      'tools/pvcurl',
      'docs/',
      'binding.gyp',
      'native/src/addon.c',
      'LICENSE',
    ]) {
      expect(inPackage(part), part).toBe(true);
    }
    for (const part of [
      'test/',
      'bench/',
      '.ci/',
      'dist/test/',
      'dist/bench/',
      'build/',
      'daemon/',
      'node_modules/',
    ]) {
      expect(inPackage(part), part).toBe(false);
    }
    expect(files.filter((file) => file.endsWith('.map') || file.endsWith('.ts'))).toEqual([]);
  });
});

describe('npm install -g of the tarball, no compiler on PATH', () => {
  const installedPackage = () => join(prefix, 'lib', 'node_modules', 'pv-xconnect');

  it('built nothing: the prebuilt addon loads', () => {
    expect(existsSync(join(installedPackage(), 'build'))).toBe(false);
  });

  it('pv-xconnect --version and pvx-sim work', async () => {
    const daemon = await runToEnd(join(prefix, 'bin', 'pv-xconnect'), ['--version'], { env: bareEnv });
    expect(daemon).toMatchObject({ code: 0, stdout: `${VERSION}\n` });
    const sim = await runToEnd(join(prefix, 'bin', 'pvx-sim'), ['validate', 'showcase'], { env: bareEnv });
    expect(sim.stdout, sim.stderr).toMatch(/^showcase: ok \(\d+ containers, \d+ links, \d+ checks\)/m);
    expect(sim.code).toBe(0);
  });

  it('the installed daemon gets ready, relays bytes and an fd, and stops cleanly', async () => {
    const ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
    await ctrl.start();
    let provider: Provider | undefined;
    const manager = await startNotifySocket(join(work, 'notify'));
    const target = join(work, 'consumer.sock');
    const daemon = runDaemon(
      [join(prefix, 'bin', 'pv-xconnect'), '--ctrl-socket', ctrl.socketPath, '--interval', '0.2'],
      { ...bareEnv, NOTIFY_SOCKET: manager.address, PVX_STATUS_SOCKET: 'none' },
    );
    try {
      provider = await startProvider(0, join(work, 'provider.sock'));
      // A dbus link whose policy narrows its role comes up only once the match-rule grammar is loaded.
      const busTarget = join(work, 'bus.sock');
      ctrl.setGraph([
        graphEntry('unix', null, null, { socket: join(work, 'provider.sock'), target }),
        graphEntry('dbus', null, null, {
          name: 'bus',
          role: 'root',
          uid: 0,
          socket: join(work, 'provider.sock'),
          target: busTarget,
          allow: [{ role: 'root', members: ['Get'] }],
        }),
      ]);
      await eventually(() => manager.received() === 'READY=1', 20_000, 'READY=1');
      await eventually(() => existsSync(busTarget), 20_000, `the narrowed dbus link (${daemon.output()})`);
      const client = await connectFrom(0, target);
      client.write(Buffer.from('ping'), [fileWithContent('through the installed daemon')]);
      const echoed = await readBytes(client, 4);
      expect(echoed.data.toString()).toBe('ping');
      expect(echoed.fds.map(contentOf)).toEqual(['through the installed daemon']);
      closeAll(echoed.fds);
      client.destroy();
      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
      expect(existsSync(target)).toBe(false);
      expect(existsSync(busTarget)).toBe(false);
    } finally {
      daemon.child.kill('SIGKILL');
      provider?.close();
      await Promise.all([manager.close(), ctrl.stop()]);
    }
  });
});
