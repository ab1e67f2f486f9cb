// The daemon's own surfaces, tried from outside: the status socket (mode, directory, one daemon at a time),
// signals (SIGUSR1 never opens the inspector, SIGHUP polls and nothing else), /health and /ready,
// /metrics under a strict parser, and a pv-ctrl that trickles its answer.
import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchGraph } from '../../daemon/graph-client.js';
import { labelValue } from '../../daemon/status-api.js';
import { killed } from '../../testkit/container.js';
import { FakeCtrl } from '../../testkit/fake-ctrl.js';
import { eventually, graphEntry, PATIENCE_MS, startProvider, startTestDaemon } from '../../testkit/mesh.js';
import { ExpositionError, parseExposition } from '../../testkit/prometheus.js';
import { daemonTestbed, getStatus } from '../../testkit/testbed.js';

const cli = join(process.cwd(), 'dist', 'daemon', 'cli.js');
const bed = daemonTestbed('surfaces', 200);

interface Running {
  child: ChildProcess;
  /** Everything written on stderr so far (the log). */
  log(): string;
  exited: Promise<number | null>;
}

/** The pv-xconnect executable against the fake pv-ctrl; `shell` wraps the exec (e.g. `umask 000`). */
function runDaemon(statusSocket: string, options: { interval?: string; shell?: string } = {}): Running {
  const args = [cli, '--ctrl-socket', bed.ctrl.socketPath, '--interval', options.interval ?? '0.2'];
  args.push('--status-socket', statusSocket);
  const quoted = [process.execPath, ...args].map((arg) => `'${arg}'`).join(' ');
  const child = spawn('sh', ['-c', `${options.shell ?? ':'} && exec ${quoted}`], { stdio: 'pipe' });
  let stderr = '';
  child.stderr.on('data', (part) => {
    stderr += part;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  bed.defer(() => killed(child));
  return { child, log: () => stderr, exited };
}

const healthy = (socketPath: string) => () =>
  getStatus(socketPath, '/health').then(
    (answer) => answer.status === 200,
    () => false,
  );

/** TCP sockets in LISTEN state that the process owns (through its fds and its network namespace's tables). */
function tcpListeners(pid: number): string[] {
  const inodes = new Set(
    readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        return match ? [match[1]] : [];
      } catch {
        return [];
      }
    }),
  );
  return ['tcp', 'tcp6'].flatMap((table) =>
    readFileSync(`/proc/${pid}/net/${table}`, 'utf8')
      .split('\n')
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields[3] === '0A' && inodes.has(fields[9] as string))
      .map((fields) => fields[1] as string),
  );
}

describe('the status socket', () => {
  it('is mode 0600 in a directory created 0700, also under umask 000', async () => {
    const dir = join(bed.work, 'made-here', 'deeper');
    const socketPath = join(dir, 'status.sock');
    runDaemon(socketPath, { shell: 'umask 000' });
    await eventually(healthy(socketPath), PATIENCE_MS, 'the status API');
    expect(statSync(socketPath).mode & 0o7777).toBe(0o600);
    expect(statSync(dir).mode & 0o7777).toBe(0o700);
  });

  it('is refused in a world-writable directory, or one owned by someone else', async () => {
    const open = join(bed.work, 'world-writable');
    mkdirSync(open);
    chmodSync(open, 0o777);
    const theirs = join(bed.work, 'theirs');
    mkdirSync(theirs, { mode: 0o755 });
    chownSync(theirs, 1000, 1000);
    for (const dir of [open, theirs]) {
      const daemon = runDaemon(join(dir, 'status.sock'));
      expect(await daemon.exited).toBe(1);
      expect(daemon.log()).toMatch(/status socket directory .* is not safe/);
      expect(readdirSync(dir)).toEqual([]);
    }
  });

  it('belongs to one daemon: a second one exits 1 while the first answers; a stale socket is taken over', async () => {
    const socketPath = join(bed.work, 'one', 'status.sock');
    const first = runDaemon(socketPath);
    await eventually(healthy(socketPath), PATIENCE_MS, 'the first daemon');
    const second = runDaemon(socketPath);
    expect(await second.exited).toBe(1);
    expect(second.log()).toContain(`another pv-xconnect is running: ${socketPath} answers`);
    expect((await getStatus(socketPath, '/health')).status).toBe(200);
    // The first dies without cleanup: its socket stays, answering nothing. A new daemon takes it over.
    first.child.kill('SIGKILL');
    await first.exited;
    const staleInode = statSync(socketPath).ino;
    const third = runDaemon(socketPath);
    await eventually(healthy(socketPath), PATIENCE_MS, 'the third daemon');
    expect(statSync(socketPath).ino).not.toBe(staleInode);
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
    expect(readdirSync(join(bed.work, 'one'))).toEqual([]);
  });
});

describe('signals', () => {
  it('SIGUSR1 never opens the inspector (control: a plain Node process does)', async () => {
    const plain = spawn(
      process.execPath,
      ['--inspect-port=0', '-e', 'console.log("up"); setInterval(() => {}, 1000)'],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    bed.defer(() => killed(plain));
    // Running code: Node's own SIGUSR1 handling is in place (before it, the signal would kill it).
    await new Promise((resolve) => plain.stdout?.once('data', resolve));
    plain.kill('SIGUSR1');
    await eventually(
      () => tcpListeners(plain.pid as number).length > 0,
      PATIENCE_MS,
      'the control inspector',
    );

    const socketPath = join(bed.work, 'usr1', 'status.sock');
    const daemon = runDaemon(socketPath);
    await eventually(healthy(socketPath), PATIENCE_MS, 'the daemon');
    daemon.child.kill('SIGUSR1');
    await eventually(() => daemon.log().includes('SIGUSR1 ignored'), PATIENCE_MS, 'the signal handled');
    expect(tcpListeners(daemon.child.pid as number)).toEqual([]);
    expect((await getStatus(socketPath, '/health')).status).toBe(200);
  });

  it('SIGHUP polls pv-ctrl at once and keeps every link as it was', async () => {
    const dir = mkdtempSync('/dev/shm/pvx-hup-');
    bed.defer(() => rmSync(dir, { recursive: true, force: true }));
    const provider = await startProvider(0, join(dir, 'provider.sock'));
    bed.defer(() => provider.close());
    bed.ctrl.setGraph(
      ['a', 'b'].map((name) =>
        graphEntry('unix', null, null, {
          name,
          socket: join(dir, 'provider.sock'),
          target: join(dir, `${name}.sock`),
        }),
      ),
    );
    const socketPath = join(dir, 'status.sock');
    // An interval long enough that any poll after the first one is the signal's.
    const daemon = runDaemon(socketPath, { interval: '3600' });
    const states = async () =>
      (JSON.parse((await getStatus(socketPath, '/links')).body) as { state: string }[]).map(
        (link) => link.state,
      );
    await eventually(
      async () => (await states()).join() === 'active,active',
      PATIENCE_MS,
      'two active links',
    );
    const inodes = () => ['a', 'b'].map((name) => statSync(join(dir, `${name}.sock`)).ino);
    const before = inodes();
    const polls = bed.ctrl.requests;
    daemon.child.kill('SIGHUP');
    await eventually(() => bed.ctrl.requests === polls + 1, PATIENCE_MS, 'a poll');
    daemon.child.kill('SIGHUP');
    await eventually(() => bed.ctrl.requests === polls + 2, PATIENCE_MS, 'another poll');
    expect(inodes()).toEqual(before);
    expect((await getStatus(socketPath, '/health')).status).toBe(200);
    expect(daemon.log()).not.toContain('shutting down');
    expect(daemon.child.exitCode).toBe(null);
  });
});

describe('readiness', () => {
  afterEach(() => bed.ctrl.setAnswer({ status: 200, body: '[]' }));

  it('/ready is 503 until a graph is applied and while fetches fail; /health stays 200', async () => {
    const socketPath = join(bed.work, 'ready.sock');
    bed.ctrl.setAnswer({ status: 500, body: 'State not loaded yet' });
    const daemon = await bed.startDaemon({ statusSocket: socketPath, intervalMs: 3600_000 });
    expect(await getStatus(socketPath, '/ready')).toEqual({
      status: 503,
      body: 'pv-ctrl answered 500: State not loaded yet\n',
    });
    expect((await getStatus(socketPath, '/health')).status).toBe(200);
    bed.ctrl.setGraph([]);
    await daemon.poll();
    expect(await getStatus(socketPath, '/ready')).toEqual({ status: 200, body: 'ready\n' });
    bed.ctrl.setAnswer({ raw: 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n[' });
    await daemon.poll();
    const answer = await getStatus(socketPath, '/ready');
    expect(answer.status).toBe(503);
    expect(answer.body).toMatch(/^last graph fetch failed: pv-ctrl/);
    expect((await getStatus(socketPath, '/health')).status).toBe(200);
  });
});

describe('a pv-ctrl that trickles', () => {
  let server: Server | null = null;
  afterEach(async () => {
    await new Promise((resolve) => server?.close(resolve) ?? resolve(null));
    server = null;
  });

  it('cannot hold a graph fetch past its deadline, however steadily it sends', async () => {
    const socketPath = join(bed.work, 'trickle.sock');
    const body = `[${' '.repeat(1000)}]`;
    const closedEarly: boolean[] = [];
    server = createServer((socket: Socket) => {
      const bytes = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      let sent = 0;
      // One byte every 50 ms: never idle for long, done only after a minute.
      const timer = setInterval(() => {
        if (sent < bytes.length) socket.write(bytes.subarray(sent, ++sent));
      }, 50);
      socket.on('error', () => {});
      socket.on('close', () => {
        clearInterval(timer);
        closedEarly.push(sent < bytes.length);
      });
    });
    await new Promise<void>((resolve) => server?.listen(socketPath, resolve));
    await expect(fetchGraph({ socketPath, timeoutMs: 1000, maxBytes: 1 << 20 })).rejects.toThrow(
      'pv-ctrl did not answer within 1000 ms',
    );
    await eventually(() => closedEarly.length === 1, PATIENCE_MS, 'the connection closed');
    expect(closedEarly).toEqual([true]);

    // And so the daemon's polls (interval 1 s: a deadline of 1 s) end, each with that reason.
    const trickled = new FakeCtrl(socketPath);
    const daemon = await startTestDaemon(trickled, { intervalMs: 1000 });
    try {
      expect(daemon.graph()).toMatchObject({ error: 'pv-ctrl did not answer within 1000 ms', polls: 1 });
      await eventually(() => daemon.graph().polls >= 2, PATIENCE_MS, 'the next poll');
    } finally {
      await daemon.stop();
    }
    expect(closedEarly.every(Boolean)).toBe(true);
  });
});

describe('/metrics', () => {
  const hostile = ['tab\there', 'quote"here', 'backslash\\here', 'newline\nhere', 'all\t"\\\n'];

  it('escapes label values exactly as the text format defines, and every series is unique', async () => {
    const dir = mkdtempSync('/dev/shm/pvx-metrics-');
    bed.defer(() => rmSync(dir, { recursive: true, force: true }));
    const provider = await startProvider(0, join(dir, 'provider.sock'));
    bed.defer(() => provider.close());
    // Two links per name that differ only by target, names full of what needs escaping.
    const entries = hostile.flatMap((name, i) =>
      ['x', 'y'].map((suffix) => ({
        ...graphEntry('unix', null, null, { socket: join(dir, 'provider.sock') }),
        consumer: `_pv_`,
        provider: `_pv_`,
        name: `svc ${name}`,
        target: join(dir, `${i}${suffix} ${name}.sock`),
      })),
    );
    bed.ctrl.setGraph(entries);
    const socketPath = join(dir, 'status.sock');
    const daemon = await bed.startDaemon({ statusSocket: socketPath });
    expect(daemon.reconciler.list().map((link) => link.state)).toEqual(entries.map(() => 'active'));
    const { status, body } = await getStatus(socketPath, '/metrics');
    expect(status).toBe(200);
    const families = parseExposition(body);
    const up = families.get('pvx_link_up')?.samples ?? [];
    expect(up.map((sample) => [sample.labels.name, sample.labels.target, sample.value]).sort()).toEqual(
      entries.map((entry) => [entry.name, entry.target, 1]).sort(),
    );
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'process_virtual_memory_bytes',
      'process_open_fds',
      'process_max_fds',
      'process_start_time_seconds',
    ]) {
      const [sample] = families.get(name)?.samples ?? [];
      expect({ name, positive: (sample?.value ?? 0) > 0 }).toEqual({ name, positive: true });
    }
  });

  it('is checked by a parser that is itself strict', () => {
    const ok =
      '# HELP m Help with \\\\ and \\n.\n# TYPE m gauge\nm{a="x\\"y\\\\z\\nw",b="\t"} 1\nm{a="2"} NaN\n';
    const families = parseExposition(ok);
    expect(families.get('m')?.samples.map((s) => s.labels.a)).toEqual(['x"y\\z\nw', '2']);
    expect(families.get('m')?.help).toBe('Help with \\ and \n.');
    const bad: [string, RegExp][] = [
      ['m{a="\\t"} 1\n', /invalid escape/],
      ['m{a="x"} 1\nm{a="x"} 2\n', /duplicate series/],
      ['m 1\nn 1\nm{a="b"} 1\n', /not contiguous/],
      ['m{a="1",a="2"} 1\n', /duplicate label/],
      ['m 1\n# TYPE m gauge\n', /TYPE after samples/],
      ['m{a="x"} 1', /newline/],
      ['m{a="x"y"} 1\n', /expected ',' or '}'/],
      ['m{a=x} 1\n', /not quoted/],
      ['m  1\n', /expected ' <value>/],
      ['m 1.2.3\n', /invalid value/],
      ['m{__name__="x"} 1\n', /reserved/],
      ['# HELP m a\\tb\n', /invalid escape/],
    ];
    for (const [text, reason] of bad) expect(() => parseExposition(text)).toThrow(reason);
    expect(() => parseExposition(bad[0]?.[0] ?? '')).toThrow(ExpositionError);
    // The daemon's escaping, through the parser, gives back exactly what went in.
    for (const value of hostile) {
      const parsed = parseExposition(`m{v=${labelValue(value)}} 1\n`).get('m')?.samples[0]?.labels.v;
      expect(parsed).toBe(value);
    }
  });
});
