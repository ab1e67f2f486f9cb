// End to end with real Docker containers (network none) and the real pv-xconnect, through the built pvx-sim
// (dist/sim/cli.js: `npm test` compiles first):
//   1. `pvx-sim check showcase` passes every check;
//   2. lifecycle through the mock pv-ctrl, driven by pvcontrol inside the mgmt container of one detached stack;
//   3. `pvx-sim down` leaves no container, state, mount or process of that stack behind.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancePaths, SIM_CLI } from '../../sim/paths.js';
import type { GraphEntry } from '../../sim/pv-ctrl/graph-builder.js';
import { DockerRuntime } from '../../sim/runtime.js';
import { processRunning } from '../../sim/simulator.js';

const CHECK_INSTANCE = `e2e-check-${process.pid}`;
const LIFE_INSTANCE = `e2e-life-${process.pid}`;
const ECHO = '/run/pv/services/echo.sock';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function pvxSim(...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SIM_CLI, ...args], { maxBuffer: 8 << 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

let runtime: DockerRuntime;
const ids = new Map<string, string>();

async function exec(container: string, command: string): Promise<Result> {
  const id = ids.get(container);
  if (!id) throw new Error(`no container ${container}`);
  const result = await runtime.exec(id, command, 10);
  return { code: result.exitCode, stdout: result.stdout, stderr: result.stderr };
}

/** pvcontrol inside the mgmt container, which reaches the mock pv-ctrl at /pantavisor/pv-ctrl. */
async function pvcontrol(args: string): Promise<unknown> {
  const result = await exec('admin', `pvcontrol ${args}`);
  if (result.code !== 0) throw new Error(`pvcontrol ${args}: ${result.stdout}${result.stderr}`);
  return JSON.parse(result.stdout);
}

const echoes = async (container: string, path = ECHO) =>
  (await exec(container, `echo ping | socat -t 2 - UNIX-CONNECT:${path}`)).stdout === 'ping\n';

/** Polls until `probe` holds; resolves with the seconds it took (reported, not asserted). */
async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<number> {
  const started = Date.now();
  while (!(await probe().catch(() => false))) {
    if (Date.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const seconds = (Date.now() - started) / 1000;
  process.stderr.write(`e2e: ${what}: ${seconds.toFixed(2)} s\n`);
  return seconds;
}

const graphLink = async (consumer: string, name: string) =>
  ((await pvcontrol('graph ls')) as GraphEntry[]).find(
    (link) => link.consumer === consumer && link.name === name,
  );

const daemonPid = async () => ((await pvcontrol('daemons ls')) as Array<{ pid: number }>)[0]?.pid ?? 0;

beforeAll(async () => {
  runtime = await DockerRuntime.connect();
});

afterAll(async () => {
  // Whatever a failed test left: down is idempotent.
  await pvxSim('down', CHECK_INSTANCE, '--keep-images');
  await pvxSim('down', LIFE_INSTANCE, '--keep-images');
});

describe('pvx-sim check showcase', () => {
  it('passes every check from inside the consumers, then tears down', async () => {
    const result = await pvxSim('check', 'showcase', '--name', CHECK_INSTANCE);
    process.stderr.write(result.stdout);
    const rows = result.stdout.split('\n').filter((line) => /^(PASS|FAIL) /.test(line));
    expect(rows.length).toBeGreaterThanOrEqual(8);
    expect(rows.filter((row) => row.startsWith('FAIL'))).toEqual([]);
    expect(result.code).toBe(0);
    expect(await runtime.list(CHECK_INSTANCE)).toEqual([]);
  }, 180_000);
});

describe('lifecycle through the mock pv-ctrl and pvcontrol', () => {
  beforeAll(async () => {
    const up = await pvxSim('up', 'showcase', '--name', LIFE_INSTANCE, '--detach');
    expect(up.code, up.stderr).toBe(0);
    for (const container of await runtime.list(LIFE_INSTANCE)) ids.set(container.name, container.id);
    await until('first links up', () => echoes('app-operator'));
  }, 120_000);

  it("`node` inside a container is the simulator's own Node.js, whatever the host's /usr holds", async () => {
    const result = await exec('admin', 'command -v node && node -p process.version');
    expect(result.stdout).toBe(`/opt/pvx/node/bin/node\n${process.version}\n`);
  });

  it('restarting the provider gives it a new pid and the link works again', async () => {
    const before = await graphLink('app-operator', 'echo');
    expect(before?.provider_pid).toBeGreaterThan(0);
    expect(await pvcontrol('containers restart echo-server')).toEqual({
      name: 'echo-server',
      action: 'restart',
    });
    const after = await graphLink('app-operator', 'echo');
    expect(after?.provider_pid).toBeGreaterThan(0);
    expect(after?.provider_pid).not.toBe(before?.provider_pid);
    await until('echo after provider restart', () => echoes('app-operator'));
  }, 60_000);

  it('stopping the consumer reports it stopped; starting it plants its socket again', async () => {
    await pvcontrol('containers stop app-operator');
    const listed = (await pvcontrol('containers ls')) as Array<{ name: string; status: string }>;
    expect(listed.find((container) => container.name === 'app-operator')?.status).toBe('STOPPED');
    await pvcontrol('containers start app-operator');
    await until('consumer socket back after stop/start', () => echoes('app-operator'));
  }, 60_000);

  it('a system container cannot be controlled; an unknown one is 404', async () => {
    const refused = await exec('admin', 'pvcontrol containers restart admin');
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout).Error).toMatch(/restart_policy 'system'/);
    const unknown = await exec('admin', 'pvcontrol containers stop ghost');
    expect(JSON.parse(unknown.stdout)).toEqual({ Error: "container 'ghost' not found" });
  });

  it('daemons stop pv-xconnect removes the proxies; daemons start brings the links back', async () => {
    expect(await pvcontrol('daemons stop pv-xconnect')).toEqual({
      name: 'pv-xconnect',
      pid: 0,
      respawn: false,
    });
    // Stopped cleanly, the daemon unplants what it planted: no socket, so no proxy.
    expect((await exec('app-operator', `test -e ${ECHO}`)).code).toBe(1);
    expect(await echoes('app-operator')).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await daemonPid()).toBe(0);
    expect(((await pvcontrol('daemons start pv-xconnect')) as { respawn: boolean }).respawn).toBe(true);
    await until('links back after daemons start', () => echoes('app-operator'));
  }, 60_000);

  it('kill -9 pv-xconnect: respawned with a new pid, links back', async () => {
    const pid = await daemonPid();
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGKILL');
    await until('pv-xconnect respawned', async () => ![0, pid].includes(await daemonPid()));
    // A stale socket of the killed daemon may still answer nothing: wait for the new daemon's echo.
    await until('links back after kill -9', () => echoes('app-operator'));
    await until('second consumer back too', () => echoes('admin', '/run/admin/echo.sock'));
  }, 60_000);
});

describe('pvx-sim down', () => {
  it('leaves no container, state, mount or process of the stack behind', async () => {
    const paths = instancePaths(LIFE_INSTANCE);
    const owner = Number(readFileSync(paths.pidFile, 'utf8'));
    const daemon = await daemonPid();
    const down = await pvxSim('down', LIFE_INSTANCE);
    expect(down.code, down.stderr).toBe(0);
    expect(await runtime.list(LIFE_INSTANCE)).toEqual([]);
    expect(existsSync(paths.root)).toBe(false);
    expect(existsSync(paths.simLog)).toBe(false);
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
    expect(mounts).not.toContain(paths.root);
    for (const id of ids.values()) expect(mounts).not.toContain(id);
    for (const pid of [owner, daemon]) expect(processRunning(pid)).toBe(false);
    // The image goes too, unless another simulator user (another stack, a concurrent test) still has containers.
    if ((await runtime.list()).length === 0) expect(await runtime.imageExists()).toBe(false);
    else expect(down.stderr).toContain('image kept');
  }, 60_000);
});
