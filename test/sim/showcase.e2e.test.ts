// End to end with real Docker containers (network none) and the real pv-xconnect, through the built pvx-sim
// (dist/sim/cli.js: `npm test` compiles first):
//   1. `pvx-sim check` passes every check of the shipped stacks (showcase, upstream-examples, hosted-bus);
//   2. lifecycle through the mock pv-ctrl, driven by pvcontrol inside the mgmt container of one detached stack;
//   3. `pvx-sim down` leaves no container, state, mount or process of that stack behind;
//   4. `pvx-sim check … | head -1` tears the stack down although its output went away; `check --watch` keeps it up
//      for its live page until Ctrl-C.
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancePaths, SIM_CLI } from '../../sim/paths.js';
import type { GraphEntry } from '../../sim/pv-ctrl/graph-builder.js';
import { DockerRuntime } from '../../sim/runtime.js';
import { processRunning } from '../../sim/simulator.js';

const CHECK_INSTANCE = `e2e-check-${process.pid}`;
const LIFE_INSTANCE = `e2e-life-${process.pid}`;
const PIPE_INSTANCE = `e2e-pipe-${process.pid}`;
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
  if (result.code !== 0)
    throw new Error(`pvcontrol ${args}: exit ${result.code} ${result.stdout}${result.stderr}`);
  return result.stdout.trim() === '' ? null : JSON.parse(result.stdout);
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

const statusOf = async (name: string) =>
  ((await pvcontrol('containers ls')) as Array<{ name: string; status: string }>).find(
    (container) => container.name === name,
  )?.status;

const daemonPid = async () =>
  ((await pvcontrol('daemons ls')) as Array<{ name: string; pid: number }>).find(
    (daemon) => daemon.name === 'pv-xconnect',
  )?.pid ?? 0;

beforeAll(async () => {
  runtime = await DockerRuntime.connect();
});

afterAll(async () => {
  // Whatever a failed test left: down says so when there is nothing, which is fine here.
  for (const instance of [CHECK_INSTANCE, LIFE_INSTANCE, PIPE_INSTANCE])
    await pvxSim('down', instance, '--keep-images');
});

describe('pvx-sim check', () => {
  for (const [stack, count] of [
    ['showcase', 19],
    ['upstream-examples', 13],
    ['hosted-bus', 6],
  ] as const) {
    it(`${stack}: passes every check from inside the consumers, then tears down`, async () => {
      const result = await pvxSim('check', stack, '--name', CHECK_INSTANCE);
      process.stderr.write(result.stdout);
      const rows = result.stdout.split('\n').filter((line) => /^(PASS|FAIL) /.test(line));
      expect(rows).toHaveLength(count);
      expect(rows.filter((row) => row.startsWith('FAIL'))).toEqual([]);
      expect(result.code).toBe(0);
      expect(await runtime.list(CHECK_INSTANCE)).toEqual([]);
      expect(existsSync(instancePaths(CHECK_INSTANCE).root)).toBe(false);
    }, 180_000);
  }
});

describe('lifecycle through the mock pv-ctrl and pvcontrol', () => {
  beforeAll(async () => {
    const up = await pvxSim('up', 'showcase', '--name', LIFE_INSTANCE, '--detach');
    expect(up.code, up.stderr).toBe(0);
    expect(up.stderr).toMatch(/live page: http:\/\/127\.0\.0\.1:\d+\//);
    for (const container of await runtime.list(LIFE_INSTANCE)) ids.set(container.name, container.id);
    await until('first links up', () => echoes('app-operator'));
  }, 120_000);

  it("`node` inside a container is the simulator's own Node.js, whatever the host's /usr holds", async () => {
    const result = await exec('admin', 'command -v node && node -p process.version');
    expect(result.stdout).toBe(`/opt/pvx/node/bin/node\n${process.version}\n`);
  });

  it('restarting the provider answers at once, then gives it a new pid, and the link works again', async () => {
    const before = await graphLink('app-operator', 'echo');
    expect(before?.provider_pid).toBeGreaterThan(0);
    // Upstream answers 200 with an empty body (pvcontrol prints an empty line) and acts afterwards.
    expect(await pvcontrol('containers restart echo-server')).toBeNull();
    await until('echo-server restarted', async () => {
      const after = await graphLink('app-operator', 'echo');
      return (after?.provider_pid ?? 0) > 0 && after?.provider_pid !== before?.provider_pid;
    });
    await until('echo after provider restart', () => echoes('app-operator'));
  }, 60_000);

  it('stopping the consumer reports it STOPPED, user_stopped; starting it plants its socket again', async () => {
    await pvcontrol('containers stop app-operator');
    await until('app-operator STOPPED', async () => (await statusOf('app-operator')) === 'STOPPED');
    const listed = (await pvcontrol('containers ls')) as Array<{ name: string; user_stopped?: string }>;
    expect(listed.find((container) => container.name === 'app-operator')?.user_stopped).toBe('true');
    await pvcontrol('containers start app-operator');
    await until('consumer socket back after stop/start', () => echoes('app-operator'));
  }, 60_000);

  it('a system container cannot be controlled (403); an unknown one is 404; pvcontrol exits 255', async () => {
    const refused = await exec('admin', 'pvcontrol containers restart admin');
    expect(refused).toEqual({
      code: 255,
      stdout: '',
      stderr: '{"Error":"Container has restart_policy \'system\' and cannot be controlled via API"}\n',
    });
    const unknown = await exec('admin', 'pvcontrol containers stop ghost');
    expect([unknown.code, unknown.stderr]).toEqual([255, '{"Error":"Container not found"}\n']);
  });

  it('a container without the mgmt role reaches its own pv-ctrl socket but may not manage (403)', async () => {
    const refused = await exec('app-guest', 'pvcontrol daemons ls');
    expect([refused.code, refused.stderr]).toEqual([
      255,
      '{"Error":"Request not sent from a mgmt platform"}\n',
    ]);
    // Signals are for everyone; this container's status goal is STARTED, so upstream's answer is 500.
    const signal = await exec('app-guest', 'pvcontrol signal ready');
    expect([signal.code, signal.stderr]).toEqual([
      255,
      '{"Error":"Signal not expected from this platform"}\n',
    ]);
  });

  it('daemons stop pv-xconnect removes the proxies (pid -1); daemons start brings the links back', async () => {
    expect(await pvcontrol('daemons stop pv-xconnect')).toBeNull();
    // Stopped cleanly, the daemon unplants what it planted: no socket, so no proxy.
    await until(
      'consumer socket gone',
      async () => (await exec('app-operator', `test -e ${ECHO}`)).code === 1,
    );
    expect(await echoes('app-operator')).toBe(false);
    await until('pv-xconnect exited for good', async () => (await daemonPid()) === -1);
    const status = await pvxSim('status', LIFE_INSTANCE);
    expect(status.code).toBe(1);
    expect(status.stderr).toContain(`status: '${LIFE_INSTANCE}' is up but pv-xconnect does not answer`);
    expect(await pvcontrol('daemons start pv-xconnect')).toBeNull();
    await until('links back after daemons start', () => echoes('app-operator'));
  }, 60_000);

  it('kill -9 pv-xconnect: respawned with a new pid, links back', async () => {
    const pid = await daemonPid();
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGKILL');
    await until('pv-xconnect respawned', async () => ![0, -1, pid].includes(await daemonPid()));
    // A stale socket of the killed daemon may still answer nothing: wait for the new daemon's echo.
    await until('links back after kill -9', () => echoes('app-operator'));
    await until('second consumer back too', () => echoes('admin', '/run/admin/echo.sock'));
  }, 60_000);

  it('pvx-sim status shows the links an allow list refused as failed, and the requests it refused as DENIED', async () => {
    const refused = await exec(
      'app-guest',
      "pvcurl -s -X DELETE --unix-socket /run/pv/services/whoami.sock -o /dev/null -w '%{http_code}' http://localhost/whoami",
    );
    expect(refused.stdout).toBe('403');
    const status = await pvxSim('status', LIFE_INSTANCE);
    expect(status.code, status.stderr).toBe(0);
    const [header, , ...rows] = status.stdout.trimEnd().split('\n');
    const columns = (header ?? '').split(/\s{2,}/);
    expect(columns).toEqual([
      'CONSUMER',
      'SERVICE',
      'TYPE',
      'ROLE',
      'PROVIDER',
      'STATE',
      'CONN',
      'DENIED',
      'ERROR',
    ]);
    const row = (consumer: string, service: string, role: string) =>
      rows
        .map((line) => line.split(/\s{2,}/))
        .find((cells) => cells[0] === consumer && cells[1] === service && cells[3] === role);
    expect(Number(row('app-guest', 'whoami', 'any')?.[7])).toBeGreaterThanOrEqual(1);
    expect(row('app-guest', 'echo', 'guest')?.slice(5)).toEqual([
      'failed',
      '0/0',
      '0',
      "role 'guest' is not allowed by echo-server/echo",
    ]);
    expect(row('app-gl', 'drm-render', 'guest')?.slice(5)).toEqual([
      'failed',
      '0/0',
      '0',
      "role 'guest' is not allowed by gpu/drm-render",
    ]);
  });

  it('pvx-sim graph draws the live link states of the running instance', async () => {
    const dot = await pvxSim('graph', 'showcase', '--name', LIFE_INSTANCE);
    expect(dot.code, dot.stderr).toBe(0);
    expect(dot.stderr).toContain(`graph: link states of the running instance '${LIFE_INSTANCE}'`);
    const edges = dot.stdout.split('\n').filter((line) => line.includes(' -> '));
    expect(edges).toHaveLength(10);
    // All active but the two links whose role the provider's allow list does not name.
    const active = edges.filter((edge) =>
      /\\nactive", color="#[0-9a-f]{6}", fontcolor="#[0-9a-f]{6}", style=solid, penwidth=2\];$/.test(edge),
    );
    expect(active).toHaveLength(8);
    const failed = edges.filter((edge) => !active.includes(edge));
    expect(failed).toHaveLength(2);
    for (const edge of failed) expect(edge).toMatch(/style=dotted/);
  });

  it('pvx-sim status shows the links and the live page; pvx-sim logs a console', async () => {
    const status = await pvxSim('status', LIFE_INSTANCE);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^CONSUMER +SERVICE/);
    expect(status.stdout.split('\n').filter((line) => / active /.test(line))).toHaveLength(8);
    expect(status.stdout.split('\n').filter((line) => / failed /.test(line))).toHaveLength(2);
    expect(status.stderr).toMatch(/live page: http:\/\/127\.0\.0\.1:\d+\//);
    const logs = await pvxSim('logs', LIFE_INSTANCE, 'gpu');
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toContain('weston');
  });
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
    expect(down.stderr).toMatch(/down: image (removed|kept \(other simulator containers still use it\))/);
    if (down.stderr.includes('image removed')) expect(await runtime.imageExists()).toBe(false);
  }, 60_000);
});

/** One provider, one consumer, one check: the smallest stack that prints more than one line. */
function writeSmallStack(stack: string): void {
  for (const container of ['server', 'client']) mkdirSync(join(stack, container), { recursive: true });
  writeFileSync(
    join(stack, 'server', 'services.json'),
    JSON.stringify([{ name: 'echo', type: 'unix', socket: '/run/echo.sock' }]),
  );
  writeFileSync(
    join(stack, 'server', 'start'),
    '#!/bin/sh\nexec socat UNIX-LISTEN:/run/echo.sock,fork EXEC:cat\n',
  );
  writeFileSync(
    join(stack, 'client', 'args.json'),
    JSON.stringify({ PV_SERVICES_REQUIRED: [{ name: 'echo' }] }),
  );
  writeFileSync(join(stack, 'client', 'start'), '#!/bin/sh\nexec sleep infinity\n');
  for (const container of ['server', 'client']) chmodSync(join(stack, container, 'start'), 0o755);
  writeFileSync(
    join(stack, 'checks.json'),
    JSON.stringify({
      checks: [
        {
          name: 'echo',
          in: 'client',
          run: 'echo x | socat - UNIX-CONNECT:/run/pv/services/echo.sock',
          stdout: 'x',
        },
      ],
    }),
  );
}

describe('pvx-sim check on a small stack', () => {
  let work: string;
  let stack: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'pvx-pipe-'));
    stack = join(work, 'pipe');
    writeSmallStack(stack);
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('| head -1: tears the stack down when its output goes away (EPIPE), and exits', async () => {
    const pipeline = await new Promise<Result>((resolve) => {
      execFile(
        'sh',
        ['-c', `"${process.execPath}" "${SIM_CLI}" check "${stack}" --name ${PIPE_INSTANCE} | head -1`],
        { timeout: 150_000 },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(pipeline.stdout.split('\n')[0]).toMatch(/^CONSUMER +SERVICE/);
    expect(pipeline.stderr).not.toContain('EPIPE');
    expect(pipeline.stderr).toContain('output closed (broken pipe): tearing down');
    // The pipeline ended (so pvx-sim exited), and it took its stack with it.
    expect(await runtime.list(PIPE_INSTANCE)).toEqual([]);
    expect(existsSync(instancePaths(PIPE_INSTANCE).root)).toBe(false);
  }, 180_000);

  it('--watch: serves the live page, keeps the stack up after the results, tears down on Ctrl-C', async () => {
    const child = spawn(process.execPath, [SIM_CLI, 'check', stack, '--name', PIPE_INSTANCE, '--watch']);
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await until(
      'the results, the stack still up',
      async () => stderr.includes('the stack stays up'),
      120_000,
    );
    const url = /live page: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(stderr)?.[1];
    expect(url).toBeDefined();
    const page = await fetch(url as string);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<svg id="graph"');
    expect((await runtime.list(PIPE_INSTANCE)).length).toBe(2);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(await runtime.list(PIPE_INSTANCE)).toEqual([]);
  }, 180_000);
});
