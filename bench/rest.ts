// `npm run bench -- rest`: small keep-alive GETs (1 and 50 connections) and a 100 MiB upload, straight to the
// provider vs through the rest mediator (the real pv-xconnect process, host-side links) vs nginx as a Unix-socket
// reverse proxy that sets the same two headers. Provider for GETs: nginx answering "ok"; for the upload: a Node
// http server that answers once it has read the whole body. Request rates are also given per CPU second of the
// proxy process (its user + system time during the run), the "per core" comparison with nginx's single worker.
// The paths take turns (rounds of GETs, of uploads, each round starting one path further on), so that the machine's
// changing load (2 shared cores) does not favour whichever path ran while it was quiet. The proxy's CPU per request
// and per GiB uploaded are the load-robust figures; the load average is recorded with them.
// A second rest link with a 20-entry allow list (the entry that allows the request last) measures what the
// per-request policy check costs, against the link without one. Then the instructions the daemon and nginx each
// execute per GET, under callgrind (bench/instructions.ts).
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { RestPolicy } from '../mediators/rest-policy.js';
import { parseAllow } from '../protocols/graph/allow.js';
import { startDaemonProcess, stopProcess } from '../testkit/daemon-process.js';
import { FakeCtrl } from '../testkit/fake-ctrl.js';
import { eventually } from '../testkit/mesh.js';
import { cpuMs, hostLink, inTurn, percentile, record, round, watchLoad } from './harness.js';
import { closedLoop, type LoadResult, openConnections, upload } from './http-load.js';
import {
  daemonUnderCallgrind,
  type InstructionCounts,
  instructionCounts,
  type RelayUnderTest,
  whenExisting,
} from './instructions.js';

const GET = Buffer.from('GET /small HTTP/1.1\r\nHost: bench\r\nAccept: */*\r\n\r\n');
const LOAD_MS = 5000;
/** The paths take turns this many times, LOAD_MS / GET_ROUNDS each. */
const GET_ROUNDS = 5;
const WARMUP_MS = 500;
const UPLOAD_BYTES = 100 * 1024 * 1024;
const UPLOAD_WRITE = 256 * 1024;
const UPLOAD_ROUNDS = 5;
/** Uploads through every path before the counted rounds: the bench process (client and sink) warms up too. */
const UPLOAD_WARMUP_ROUNDS = 2;
const IDENTITY = { consumer: '_pv_', role: 'reader' };

/** A host-side rest link with the identity nginx is configured with. */
const restLink = (name: string, socket: string, target: string, allow?: unknown[]) =>
  hostLink(name, socket, target, { type: 'rest', role: IDENTITY.role, ...(allow ? { allow } : {}) });

/**
 * 20 entries for the role, each with methods and paths; only the last allows the bench's GET, so every request is
 * checked against all of them (path patterns ending in `*` and exact ones, as a real policy mixes them).
 */
const POLICY = [
  ...Array.from({ length: 19 }, (_, i) => ({
    role: IDENTITY.role,
    methods: ['GET', 'HEAD', 'POST'],
    paths: [`/api/v${i}/items/*`, `/api/v${i}/status`],
  })),
  { role: IDENTITY.role, methods: ['GET'], paths: ['/metrics', '/small'] },
];

function nginxConfig(dir: string, name: string, server: string): string {
  return `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/${name}.pid;
error_log ${dir}/${name}-error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/${name}-body;
  proxy_temp_path ${dir}/${name}-proxy;
  fastcgi_temp_path ${dir}/${name}-fastcgi;
  uwsgi_temp_path ${dir}/${name}-uwsgi;
  scgi_temp_path ${dir}/${name}-scgi;
  client_max_body_size 0;
  keepalive_requests 10000000;
  ${server}
}
`;
}

/** nginx serving `server`; `wrapper` goes in front of its command line (callgrind). */
function startNginx(dir: string, name: string, server: string, wrapper: string[] = []): ChildProcess {
  const config = join(dir, `${name}.conf`);
  writeFileSync(config, nginxConfig(dir, name, server));
  const [file = 'nginx', ...args] = [...wrapper, 'nginx'];
  return spawn(file, [...args, '-e', join(dir, `${name}-error.log`), '-c', config], { stdio: 'inherit' });
}

const IDENTITY_HEADERS = `proxy_set_header X-PV-Client ${IDENTITY.consumer}; proxy_set_header X-PV-Role ${IDENTITY.role};`;

/** nginx's part as the GET proxy listening at `listen`: kept connections to the provider, the identity set. */
function getProxy(providerPath: string, listen: string): string {
  return `upstream provider { server unix:${providerPath}; keepalive 64; }
  server {
    listen unix:${listen};
    location / { proxy_pass http://provider; proxy_http_version 1.1; proxy_set_header Connection ""; ${IDENTITY_HEADERS} }
  }`;
}

/** A provider for uploads: answers 200 once the whole body has been read. */
function uploadSink(path: string): Promise<Server> {
  const server = createServer((req, res) => {
    req.on('data', () => {});
    req.on('end', () => res.end('ok\n'));
  });
  return new Promise((resolve) => server.listen(path, () => resolve(server)));
}

interface PathUnderTest {
  name: string;
  get: string;
  /** null: GETs only. */
  upload: string | null;
  /** The relaying process whose CPU time is measured (none for direct). */
  proxyPid: number | null;
}

type GetRow = Awaited<ReturnType<typeof measureGets>>[number];
type UploadRow = Awaited<ReturnType<typeof measureUploads>>[number];

function measured(value: number | undefined): number {
  if (value === undefined) throw new Error('a measurement is missing');
  return value;
}

/**
 * Small GETs on `connections` keep-alive connections per path, the paths taking turns for GET_ROUNDS rounds (so
 * that a change in the machine's load affects them alike). Proxy CPU time counts while the requests run only,
 * not while connecting.
 */
async function measureGets(paths: PathUnderTest[], connections: number) {
  const samples = [];
  for (const path of paths) {
    const sockets = await openConnections(path.get, connections);
    samples.push({ path, sockets, requests: 0, seconds: 0, proxyCpu: 0, latenciesUs: [] as number[] });
  }
  try {
    for (const { sockets } of samples) await closedLoop(sockets, GET, { durationMs: WARMUP_MS });
    for (let round = 0; round < GET_ROUNDS; round += 1) {
      for (const sample of inTurn(samples, round)) {
        const { proxyPid } = sample.path;
        const cpuBefore = proxyPid === null ? 0 : cpuMs(proxyPid) / 1000;
        const result: LoadResult = await closedLoop(sample.sockets, GET, {
          durationMs: LOAD_MS / GET_ROUNDS,
        });
        sample.proxyCpu += proxyPid === null ? Number.NaN : cpuMs(proxyPid) / 1000 - cpuBefore;
        sample.requests += result.requests;
        sample.seconds += result.seconds;
        for (const latency of result.latenciesUs) sample.latenciesUs.push(latency);
      }
    }
  } finally {
    for (const { sockets } of samples) for (const socket of sockets) socket.destroy();
  }
  return samples.map(({ path, requests, seconds, proxyCpu, latenciesUs }) => {
    latenciesUs.sort((a, b) => a - b);
    return {
      path: path.name,
      connections,
      'requests/s': round(requests / seconds),
      'p50 µs': round(percentile(latenciesUs, 50)),
      'p99 µs': round(percentile(latenciesUs, 99)),
      'proxy CPU %': round((proxyCpu / seconds) * 100),
      'requests per proxy CPU s': round(requests / proxyCpu),
      'proxy CPU µs per request': round((proxyCpu * 1e6) / requests, 2),
    };
  });
}

/**
 * Uploads through the paths in turn, round after round, so that a change in the machine's load, or the bench
 * process warming up, affects every path alike (measured one path after the other, "direct" came first and the
 * ratios moved by ±50% from run to run). The warm-up rounds are not counted.
 */
async function measureUploads(paths: PathUnderTest[]) {
  const samples = paths.flatMap((path) =>
    path.upload === null ? [] : [{ path, upload: path.upload, rates: [] as number[], proxyCpu: 0 }],
  );
  for (let round = -UPLOAD_WARMUP_ROUNDS; round < UPLOAD_ROUNDS; round += 1) {
    for (const sample of inTurn(samples, round + UPLOAD_WARMUP_ROUNDS)) {
      const { proxyPid } = sample.path;
      const cpuBefore = proxyPid === null ? 0 : cpuMs(proxyPid) / 1000;
      const rate = await upload(sample.upload, UPLOAD_BYTES, UPLOAD_WRITE);
      if (round < 0) continue;
      sample.rates.push(rate);
      sample.proxyCpu += proxyPid === null ? Number.NaN : cpuMs(proxyPid) / 1000 - cpuBefore;
    }
  }
  return samples.map(({ path, rates, proxyCpu }) => ({
    path: path.name,
    'upload MiB/s (median of 5)': round(measured(rates.sort((a, b) => a - b)[Math.floor(UPLOAD_ROUNDS / 2)])),
    'MiB per proxy CPU s': round(((UPLOAD_BYTES / (1 << 20)) * UPLOAD_ROUNDS) / proxyCpu),
    'proxy CPU s per GiB': round(proxyCpu / ((UPLOAD_BYTES / (1 << 30)) * UPLOAD_ROUNDS), 3),
  }));
}

/** CPU ns of one `RestPolicy.check` of a GET of `target` against POLICY (in this process, 2 million checks). */
function policyCheckNs(target: string): number {
  const narrowings = parseAllow(POLICY, 'rest', 'bench').grantFor(IDENTITY.role)?.narrowings;
  if (!narrowings) throw new Error('the bench policy does not narrow its role');
  const policy = new RestPolicy(IDENTITY.role, narrowings);
  const checks = 2_000_000;
  let allowed = 0;
  for (let i = 0; i < checks / 10; i += 1) allowed += policy.check('GET', target).allowed ? 1 : 0;
  const before = process.cpuUsage();
  for (let i = 0; i < checks; i += 1) allowed += policy.check('GET', target).allowed ? 1 : 0;
  const used = process.cpuUsage(before);
  if (allowed !== checks * 1.1) throw new Error(`the bench policy refuses GET ${target}`);
  return ((used.user + used.system) * 1000) / checks;
}

/** Under callgrind (everything ~50× slower): GETs counted per relay, after a warm-up; the daemon's JIT settles
 * over about 10 000 (the count after fewer is mostly its compiler's). */
const COUNTED_GETS = 6000;
const COUNTED_CONNECTIONS = 50;
const COUNTED_WARMUP_GETS = 1000;
const COUNTED_JIT_WARMUP_GETS = 12_000;

/** The daemon (one rest link) and nginx as the GET proxy, each started under callgrind with its connections open. */
function relaysUnderCallgrind(
  dir: string,
  providerPath: string,
): Record<string, (wrapper: string[]) => Promise<RelayUnderTest<Socket[]>>> {
  const connected = async (
    path: string,
    pid: number,
    jit: boolean,
    stop: () => Promise<void>,
  ): Promise<RelayUnderTest<Socket[]>> => {
    const sockets = await openConnections(path, COUNTED_CONNECTIONS);
    return {
      pids: [pid],
      jit,
      endpoints: sockets,
      stop: async () => {
        for (const socket of sockets) socket.destroy();
        await stop();
      },
    };
  };
  return {
    'pv-xconnect': async (wrapper) => {
      const path = join(dir, 'cg-mesh.sock');
      const daemon = await daemonUnderCallgrind(
        wrapper,
        join(dir, 'cg-ctrl.sock'),
        [restLink('cg-get', providerPath, path)],
        [path],
      );
      return connected(path, daemon.pid, true, daemon.stop);
    },
    'nginx proxy': async (wrapper) => {
      const path = join(dir, 'cg-proxy.sock');
      const proxy = startNginx(dir, 'cg-proxy', getProxy(providerPath, path), wrapper);
      await whenExisting([path], 'nginx');
      return connected(path, proxy.pid as number, false, () => stopProcess(proxy));
    },
  };
}

const getsOn = (requests: number) => (sockets: Socket[]) => closedLoop(sockets, GET, { requests });

export async function run(): Promise<void> {
  const load = watchLoad();
  const dir = mkdtempSync('/dev/shm/pvx-bench-rest-');
  const providerPath = join(dir, 'provider.sock');
  const sinkPath = join(dir, 'sink.sock');
  const ctrlPath = join(dir, 'ctrl.sock');
  const provider = startNginx(
    dir,
    'provider',
    `server { listen unix:${providerPath}; location / { return 200 "ok\\n"; } }`,
  );
  const sink = await uploadSink(sinkPath);
  const proxy = startNginx(
    dir,
    'proxy',
    `${getProxy(providerPath, join(dir, 'proxy-get.sock'))}
  upstream sink { server unix:${sinkPath}; keepalive 8; }
  server {
    listen unix:${dir}/proxy-upload.sock;
    location / {
      proxy_pass http://sink; proxy_http_version 1.1; proxy_set_header Connection ""; ${IDENTITY_HEADERS}
      proxy_request_buffering off; proxy_buffering off;
    }
  }`,
  );
  const graph = [
    restLink('get', providerPath, join(dir, 'mesh-get.sock')),
    restLink('upload', sinkPath, join(dir, 'mesh-upload.sock')),
    restLink('get-policy', providerPath, join(dir, 'mesh-get-policy.sock'), POLICY),
  ];
  const ctrl = await FakeCtrl.serving(ctrlPath, graph);
  const daemon = startDaemonProcess(ctrlPath);
  const sockets = ['provider', 'proxy-get', 'proxy-upload', 'mesh-get', 'mesh-upload', 'mesh-get-policy'];
  await eventually(
    () => sockets.every((name) => existsSync(join(dir, `${name}.sock`))),
    10_000,
    'the servers',
  );

  const paths: PathUnderTest[] = [
    { name: 'direct', get: providerPath, upload: sinkPath, proxyPid: null },
    {
      name: 'pv-xconnect',
      get: join(dir, 'mesh-get.sock'),
      upload: join(dir, 'mesh-upload.sock'),
      proxyPid: daemon.pid as number,
    },
    {
      name: 'pv-xconnect, 20-entry policy',
      get: join(dir, 'mesh-get-policy.sock'),
      upload: null,
      proxyPid: daemon.pid as number,
    },
    {
      name: 'nginx proxy',
      get: join(dir, 'proxy-get.sock'),
      upload: join(dir, 'proxy-upload.sock'),
      proxyPid: proxy.pid as number,
    },
  ];
  const gets: GetRow[] = [];
  const uploads: UploadRow[] = [];
  let instructions: Record<string, InstructionCounts> = {};
  try {
    for (const connections of [1, 50]) gets.push(...(await measureGets(paths, connections)));
    uploads.push(...(await measureUploads(paths)));
    await stopProcess(daemon);
    await stopProcess(proxy);
    instructions = await instructionCounts(dir, relaysUnderCallgrind(dir, providerPath), [
      {
        unit: `per GET (${COUNTED_CONNECTIONS} connections)`,
        units: COUNTED_GETS,
        run: getsOn(COUNTED_GETS),
        warmUp: getsOn(COUNTED_WARMUP_GETS),
        jitWarmUp: getsOn(COUNTED_JIT_WARMUP_GETS),
      },
    ]);
  } finally {
    await stopProcess(daemon);
    await Promise.all([stopProcess(proxy), stopProcess(provider)]);
    sink.close();
    await ctrl.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const rate = (name: string, connections: number, key: 'requests/s' | 'requests per proxy CPU s') =>
    measured(gets.find((entry) => entry.path === name && entry.connections === connections)?.[key]);
  const uploadRate = (name: string) =>
    measured(uploads.find((entry) => entry.path === name)?.['upload MiB/s (median of 5)']);
  const ratios: Record<string, number> = {};
  for (const connections of [1, 50]) {
    for (const key of ['requests/s', 'requests per proxy CPU s'] as const) {
      ratios[`${key} vs nginx (${connections} conn)`] = round(
        rate('pv-xconnect', connections, key) / rate('nginx proxy', connections, key),
        2,
      );
    }
  }
  for (const connections of [1, 50]) {
    for (const key of ['requests/s', 'requests per proxy CPU s'] as const) {
      ratios[`${key} with the policy vs without (${connections} conn)`] = round(
        rate('pv-xconnect, 20-entry policy', connections, key) / rate('pv-xconnect', connections, key),
        3,
      );
    }
  }
  ratios['upload vs direct'] = round(uploadRate('pv-xconnect') / uploadRate('direct'), 2);
  ratios['upload vs nginx'] = round(uploadRate('pv-xconnect') / uploadRate('nginx proxy'), 2);
  const cpuPerGiB = (name: string) =>
    measured(uploads.find((entry) => entry.path === name)?.['proxy CPU s per GiB']);
  ratios['upload CPU per GiB vs nginx'] = round(cpuPerGiB('pv-xconnect') / cpuPerGiB('nginx proxy'), 2);

  const policyCheck = {
    'ns per check, /small': round(policyCheckNs('/small')),
    'ns per check, dot segments and escapes': round(policyCheckNs('/api/v3/../v18/items/%7ex?q=1')),
  };
  // What one check costs against the daemon's own CPU per request without a policy.
  ratios['policy check CPU vs daemon CPU per request (50 conn)'] = round(
    (policyCheck['ns per check, /small'] / 1e9) * rate('pv-xconnect', 50, 'requests per proxy CPU s'),
    3,
  );

  const unit = `per GET (${COUNTED_CONNECTIONS} connections)`;
  const ourInstructions = instructions['pv-xconnect']?.[unit];
  const nginxInstructions = instructions['nginx proxy']?.[unit];
  if (ourInstructions !== undefined && nginxInstructions !== undefined)
    ratios[`instructions per GET vs nginx (${COUNTED_CONNECTIONS} conn)`] = round(
      ourInstructions / nginxInstructions,
      2,
    );

  record('rest', { load: load(), gets, uploads, policyCheck, ratios, instructions }, gets);
  console.log('instructions:', instructions);
  console.log('policy check:', policyCheck);
  console.table(uploads);
  console.log('ratios:', ratios);
}
