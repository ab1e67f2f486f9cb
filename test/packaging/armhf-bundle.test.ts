// The armhf bundle. Node.js has no armv7 build past 20, so the bundle carries none and this machine has no
// supported Node.js to run its daemon under qemu-arm. What can be checked is checked with the last armv7 Node.js
// (20.11, from the npm registry): the cross-built addon loads and works (an fd through a socket pair, a datagram
// to a NOTIFY_SOCKET), and the daemon refuses that Node.js in one line, exit 1, as it would on a device.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, unpackedBundle } from '../../testkit/bundle.js';
import { runToEnd, startNotifySocket } from '../../testkit/daemon-process.js';
import { eventually } from '../../testkit/mesh.js';

const QEMU = ['qemu-arm-static', '-L', '/usr/arm-linux-gnueabihf'];

let work: string;
let bundle: string;
let node20: string;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-armhf-bundle-'));
  bundle = await unpackedBundle('arm', work);
  const fetched = await runToEnd(join(ROOT, 'packaging', 'fetch-node'), ['armv7', 'armv7l']);
  expect(fetched.code, fetched.stderr).toBe(0);
  node20 = join(fetched.stdout.trim(), 'bin', 'node');
}, 300_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the armhf bundle', () => {
  it('carries no Node.js and an ARM (EABI5, 32-bit) addon', () => {
    expect(readdirSync(bundle)).not.toContain('node');
    const header = readFileSync(join(bundle, 'prebuilds', 'linux-arm', 'pvx_native.node')).subarray(0, 20);
    expect(header.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(header[4]).toBe(1); // 32-bit
    expect(header.readUInt16LE(18)).toBe(40); // EM_ARM
  });

  it('its addon loads on armv7 and passes an fd, and notifies', async () => {
    const manager = await startNotifySocket(join(work, 'notify'));
    const script = `
      const addon = require(${JSON.stringify(join(bundle, 'prebuilds', 'linux-arm', 'pvx_native.node'))});
      const [x, y] = addon.socketPair();
      const [p, q] = addon.socketPair();
      addon.send(x, [Buffer.from('ping')], 0, [p]);
      const got = addon.recv(y, 64);
      addon.send(got.fds[0], [Buffer.from('through the passed fd')], 0, null);
      const back = addon.recv(q, 64);
      addon.notify(${JSON.stringify(manager.address)}, 'READY=1');
      console.log(JSON.stringify({ arch: process.arch, data: got.data.toString(), back: back.data.toString() }));`;
    try {
      const ran = await runToEnd(QEMU[0] as string, [...QEMU.slice(1), node20, '-e', script]);
      expect(ran.stderr).toBe('');
      expect(JSON.parse(ran.stdout)).toEqual({ arch: 'arm', data: 'ping', back: 'through the passed fd' });
      await eventually(() => manager.received() === 'READY=1', 5000, 'READY=1 from armv7');
    } finally {
      await manager.close();
    }
  }, 60_000);

  it('its daemon refuses Node.js 20 in one line, exit 1', async () => {
    const ran = await runToEnd(QEMU[0] as string, [
      ...QEMU.slice(1),
      node20,
      join(bundle, 'lib', 'pv-xconnect.mjs'),
      '--status-socket',
      'none',
    ]);
    expect(ran.code).toBe(1);
    expect(ran.stdout).toBe('');
    expect(ran.stderr).toBe('pv-xconnect: Node.js v20.11.0 is not supported: it needs Node.js 22 or newer\n');
  }, 60_000);
});
