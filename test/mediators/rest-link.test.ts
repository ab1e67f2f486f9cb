// REST links end to end: the daemon (in this process) between a consumer container C and a provider container P,
// with real clients inside C (curl, OpenBSD nc, socat, Node's http client) and real servers behind the link (a Node
// http server that echoes what it received, nginx inside P). Every request a server sees carries exactly one
// X-PV-Client and one X-PV-Role, with the link's values, whatever the client forged.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Daemon } from '../../daemon/daemon.js';
import { silentLogger } from '../../log/logger.js';
import { statIn } from '../../native/namespace.js';
import { type Container, startContainer } from '../../testkit/container.js';
import { FakeCtrl } from '../../testkit/fake-ctrl.js';
import {
  type EchoServer,
  fieldValues,
  type SeenRequest,
  startEchoServer,
  startNginx,
} from '../../testkit/http-peers.js';
import { eventually, type GraphEntry, PATIENCE_MS } from '../../testkit/mesh.js';

const API = '/run/pv/services/api.sock';
const WS = '/run/pv/services/ws.sock';
const WEB = '/run/pv/services/web.sock';
const NGINX_SOCKET = '/run/p/nginx.sock';
const GUARDED = '/run/pv/services/guarded.sock';
/** The echo server again, behind an allow list that lets `reader` GET and HEAD under /api/ only. */
const GUARD = [{ role: 'reader', methods: ['GET', 'HEAD'], paths: ['/api/*'] }];

let work: string;
let ctrl: FakeCtrl;
let P: Container;
let C: Container;
let api: EchoServer;
let ws: EchoServer;
let daemon: Daemon;

function link(name: string, socket: string): GraphEntry {
  return {
    consumer: 'app',
    consumer_pid: C.pid,
    provider: 'svc',
    provider_pid: P.pid,
    name,
    type: 'rest',
    role: 'reader',
    socket,
    target: null,
  };
}

/** Runs a command inside C and returns its stdout; a failing command fails the test with its stderr. */
async function inC(cmd: string[], input?: string | Buffer): Promise<string> {
  const result = await C.exec(cmd, { input });
  if (result.code !== 0) throw new Error(`${cmd.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

function curl(...args: string[]): Promise<string> {
  return inC(['curl', '-sS', '--fail-with-body', ...args]);
}

/** The echo server's answers in a stream of responses (one JSON object per line). */
function answers(text: string): SeenRequest[] {
  return (text.match(/^\{.*\}$/gm) ?? []).map((line) => JSON.parse(line) as SeenRequest);
}

function expectStamped(request: SeenRequest): void {
  expect(fieldValues(request.headers, 'X-PV-Client'), request.url).toEqual(['app']);
  expect(fieldValues(request.headers, 'X-PV-Role'), request.url).toEqual(['reader']);
  expect(fieldValues(request.trailers, 'X-PV-Client'), request.url).toEqual([]);
  expect(fieldValues(request.trailers, 'X-PV-Role'), request.url).toEqual([]);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'pvx-rest-'));
  ctrl = new FakeCtrl(join(work, 'pv-ctrl'));
  await ctrl.start();
  [P, C] = await Promise.all([startContainer({ privateTmp: true }), startContainer({ privateTmp: true })]);
  api = await startEchoServer(P.pid, '/run/p/api.sock');
  ws = await startEchoServer(P.pid, '/run/p/ws.sock', true);
  await startNginx(P, NGINX_SOCKET);
  ctrl.setGraph([
    link('api', '/run/p/api.sock'),
    link('ws', '/run/p/ws.sock'),
    link('web', NGINX_SOCKET),
    { ...link('guarded', '/run/p/api.sock'), allow: GUARD },
  ]);
  daemon = new Daemon({
    ctrlSocket: ctrl.socketPath,
    intervalMs: 200,
    statusSocket: null,
    log: silentLogger,
  });
  await daemon.start();
  await eventually(
    async () => {
      for (const target of [API, WS, WEB, GUARDED]) {
        if ((await statIn({ pid: C.pid, path: target })).type !== 'socket') return false;
      }
      return true;
    },
    PATIENCE_MS,
    'the REST links',
  );
});

afterAll(async () => {
  await daemon?.stop();
  await Promise.all([api?.close(), ws?.close()]);
  await Promise.all([P?.stop(), C?.stop(), ctrl?.stop()]);
  rmSync(work, { recursive: true, force: true });
});

describe('a REST link with real clients and servers', () => {
  it('curl GET: forged identity in every spelling and nominated in Connection never arrives', async () => {
    const [seen] = answers(
      await curl(
        '--unix-socket',
        API,
        '-H',
        'X-PV-Client: evil',
        '-H',
        'x_pv_role: admin',
        '-H',
        'X.PV.CLIENT: evil2',
        '-H',
        'Connection: X-PV-Role, x-pv-client',
        'http://api/get?q=1',
      ),
    );
    expect(seen?.url).toBe('/get?q=1');
    if (seen) expectStamped(seen);
    expect(fieldValues(seen?.headers ?? [], 'Connection').join()).not.toMatch(/pv/i);
  });

  it('curl keep-alive: several requests on one connection, forged on a later one, all stamped', async () => {
    const seen = answers(
      await curl(
        '--unix-socket',
        API,
        'http://api/k1',
        'http://api/k2',
        '--next',
        '--unix-socket',
        API,
        '-H',
        'X-Pv-Client: later',
        '-H',
        'X_PV_ROLE: admin',
        'http://api/k3',
      ),
    );
    expect(seen.map((request) => request.url)).toEqual(['/k1', '/k2', '/k3']);
    expect(new Set(seen.map((request) => request.connection)).size).toBe(1);
    for (const request of seen) expectStamped(request);
  });

  it('curl POST of a 50 MiB body streams through intact', async () => {
    const hashed = await inC(['sh', '-c', 'head -c 52428800 /dev/urandom > /tmp/big && sha256sum /tmp/big']);
    const [seen] = answers(
      await curl(
        '--unix-socket',
        API,
        '-X',
        'POST',
        '-T',
        '/tmp/big',
        '-H',
        'X-PV-Role: admin',
        'http://api/up',
      ),
    );
    expect(seen?.bodyBytes).toBe(52428800);
    expect(seen?.bodySha256).toBe(hashed.split(' ')[0]);
    if (seen) expectStamped(seen);
    await inC(['rm', '-f', '/tmp/big']);
  });

  it('curl chunked upload from stdin arrives re-chunked, byte for byte', async () => {
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const stdout = await C.exec(
      [
        'curl',
        '-sS',
        '--unix-socket',
        API,
        '-X',
        'POST',
        '-T',
        '-',
        '-H',
        'x-pv-client: evil',
        'http://api/chunked',
      ],
      { input: body },
    );
    const [seen] = answers(stdout.stdout);
    expect(fieldValues(seen?.headers ?? [], 'Transfer-Encoding')).toEqual(['chunked']);
    expect(seen?.bodyBytes).toBe(body.length);
    expect(seen?.bodySha256).toBe(sha256(body));
    if (seen) expectStamped(seen);
  });

  it('nc: requests pipelined in one write are each stamped and answered in order', async () => {
    const output = await inC(
      ['nc', '-U', API],
      'GET /p1 HTTP/1.1\r\nHost: api\r\n\r\n' +
        'GET /p2 HTTP/1.1\r\nHost: api\r\nX-PV-Client: evil\r\nX-PV-Role: admin\r\n\r\n' +
        'POST /p3 HTTP/1.1\r\nHost: api\r\nContent-Length: 3\r\nx_pv_client: e\r\nConnection: close, X-PV-Role\r\n\r\nabc',
    );
    const seen = answers(output);
    expect(seen.map((request) => request.url)).toEqual(['/p1', '/p2', '/p3']);
    expect(new Set(seen.map((request) => request.connection)).size).toBe(1);
    for (const request of seen) expectStamped(request);
    expect(seen[2]?.bodyBytes).toBe(3);
  });

  it('an upgrade answered 426 stays HTTP: the next request is stamped', async () => {
    const output = await inC(
      ['nc', '-U', API],
      'GET /ws HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n' +
        'GET /after HTTP/1.1\r\nHost: api\r\nX-PV-Client: evil\r\nConnection: close\r\n\r\n',
    );
    expect(output).toMatch(/^HTTP\/1\.1 426 /);
    const seen = answers(output);
    expect(seen.map((request) => request.url)).toEqual(['/ws', '/after']);
    for (const request of seen) expectStamped(request);
  });

  it("Node's http client: keep-alive requests and a 101 upgrade to an opaque tunnel", async () => {
    const script = `
const http = require('node:http');
const [api, ws] = process.argv.slice(1);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const request = (path, headers, body) => new Promise((resolve, reject) => {
  const req = http.request({ socketPath: api, path, method: body ? 'POST' : 'GET', headers, agent }, (res) => {
    let text = '';
    res.on('data', (data) => { text += data; });
    res.on('end', () => resolve({ status: res.statusCode, seen: JSON.parse(text) }));
  });
  req.on('error', reject);
  req.end(body);
});
const tunnel = () => new Promise((resolve, reject) => {
  const req = http.request({ socketPath: ws, path: '/tunnel',
    headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'X-PV-Role': 'admin' } });
  req.on('upgrade', (res, socket, head) => {
    const message = 'GET / HTTP/1.1\\r\\nX-PV-Client: inside the tunnel\\r\\n\\r\\n';
    let echoed = head.toString('latin1');
    socket.on('data', (data) => {
      echoed += data.toString('latin1');
      if (echoed.length >= message.length) { socket.destroy(); resolve({ status: res.statusCode, echoed }); }
    });
    socket.write(message);
  });
  req.on('response', (res) => reject(new Error('not upgraded: ' + res.statusCode)));
  req.on('error', reject);
  req.end();
});
(async () => {
  const results = [
    await request('/n1', {}),
    await request('/n2', { 'X-PV-Client': 'evil', x_pv_role: 'admin', Connection: 'keep-alive, X-PV-Role' }),
    await request('/n3', { 'X.PV.Client': 'evil' }, 'body from node'),
  ];
  agent.destroy();
  console.log(JSON.stringify({ results, tunnel: await tunnel() }));
})().catch((error) => { console.error(error); process.exit(1); });
`;
    const { results, tunnel } = JSON.parse(await inC(['node', '-e', script, API, WS])) as {
      results: { status: number; seen: SeenRequest }[];
      tunnel: { status: number; echoed: string };
    };
    expect(results.map((result) => [result.status, result.seen.url])).toEqual([
      [200, '/n1'],
      [200, '/n2'],
      [200, '/n3'],
    ]);
    expect(new Set(results.map((result) => result.seen.connection)).size).toBe(1);
    for (const result of results) expectStamped(result.seen);
    expect(results[2]?.seen.bodyBytes).toBe('body from node'.length);
    // The upgrade request was stamped; after the 101 the bytes are not HTTP any more: echoed untouched.
    expect(tunnel).toEqual({
      status: 101,
      echoed: 'GET / HTTP/1.1\r\nX-PV-Client: inside the tunnel\r\n\r\n',
    });
    const upgrade = ws.requests.find((request) => request.url === '/tunnel');
    expect(upgrade).toBeDefined();
    if (upgrade) expectStamped(upgrade);
  });

  it('nginx behind the link reads the link identity even when look-alikes were forged', async () => {
    // Control: straight to nginx (inside P), the look-alike is read as the identity.
    const direct = await P.exec([
      'curl',
      '-sS',
      '--unix-socket',
      NGINX_SOCKET,
      '-H',
      'X_PV_Client: evil',
      'http://web/',
    ]);
    expect(direct.stdout).toBe('client=evil role=\n');
    const output = await curl(
      '--unix-socket',
      WEB,
      '-H',
      'X_PV_Client: evil',
      '-H',
      'X-PV-Role: admin',
      '-H',
      'Connection: X-PV-Client',
      'http://web/',
    );
    expect(output).toBe('client=app role=reader\n');
  });

  it('socat: a request followed by a half-close still gets its whole answer', async () => {
    const output = await inC(
      ['socat', '-t', '5', '-', `UNIX-CONNECT:${WEB}`],
      'GET / HTTP/1.1\r\nHost: web\r\nX-PV-Client: evil\r\n\r\n',
    );
    expect(output).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(output.endsWith('\r\n\r\nclient=app role=reader\n')).toBe(true);
  });

  it('an invalid request gets 400 and never reaches the server', async () => {
    const before = api.requests.length;
    const output = await inC(
      ['nc', '-U', API],
      'POST /smuggle HTTP/1.1\r\nHost: api\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: api\r\n\r\n',
    );
    expect(output).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n(.*\r\n)*Connection: close\r\n/);
    // A request answered after it has passed the same server: anything of the refused one would be in before.
    const [after] = answers(await curl('--unix-socket', API, 'http://api/after-refusal'));
    expect(after?.url).toBe('/after-refusal');
    expect(api.requests.slice(before).map((request) => request.url)).toEqual(['/after-refusal']);
  });
});

/** The status of every response in a stream of them, in order. */
function statuses(text: string): number[] {
  return [...text.matchAll(/^HTTP\/1\.1 (\d{3}) /gm)].map((match) => Number(match[1]));
}

describe("a REST link whose provider's allow list narrows the role", () => {
  const deniedSoFar = () => daemon.reconciler.list().find((l) => l.spec.name === 'guarded')?.counters.denied;

  it('curl: an allowed GET reaches the server stamped; a refused method or path gets 403 and never does', async () => {
    const before = api.requests.length;
    const denied = deniedSoFar() ?? 0;
    const [seen] = answers(await curl('--unix-socket', GUARDED, 'http://api/api/items?q=1'));
    expect(seen?.url).toBe('/api/items?q=1');
    if (seen) expectStamped(seen);

    for (const [args, rule, request] of [
      [['-X', 'POST', '-d', 'payload=1', 'http://api/api/items'], 'reader: methods', 'POST /api/items'],
      [['http://api/admin'], 'reader: paths', 'GET /admin'],
      // Dot segments, plain or percent-encoded, are resolved before the check: these leave /api/.
      [['--path-as-is', 'http://api/api/../admin'], 'reader: paths', 'GET /admin'],
      [['--path-as-is', 'http://api/api/%2e%2E/admin'], 'reader: paths', 'GET /admin'],
    ] as const) {
      const result = await C.exec([
        'curl',
        '-sS',
        '-w',
        '\\n%{http_code}',
        '--unix-socket',
        GUARDED,
        ...args,
      ]);
      // The body is one JSON line; curl appends the status after it.
      const [body, code] = result.stdout.split('\n\n');
      expect(code, args.join(' ')).toBe('403');
      expect(JSON.parse(body ?? '')).toEqual({ error: 'forbidden by the access policy', rule, request });
    }
    // Escapes that cannot be resolved soundly are refused as unreadable paths.
    for (const path of ['/api/..%2Fadmin', '/api/../../etc/passwd']) {
      const result = await C.exec([
        'curl',
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--path-as-is',
        '--unix-socket',
        GUARDED,
        `http://api${path}`,
      ]);
      expect(result.stdout, path).toBe('400');
    }
    expect(api.requests.slice(before).map((request) => request.url)).toEqual(['/api/items?q=1']);
    expect(deniedSoFar()).toBe(denied + 6);
  });

  it('nc: a pipelined mix of allowed and refused requests is answered in order on one connection', async () => {
    const before = api.requests.length;
    const output = await inC(
      ['nc', '-U', GUARDED],
      'GET /api/1 HTTP/1.1\r\nHost: api\r\n\r\n' +
        'POST /api/2 HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\n\r\nhello' +
        'GET /api/3 HTTP/1.1\r\nHost: api\r\nX-PV-Role: admin\r\n\r\n' +
        'GET /secret HTTP/1.1\r\nHost: api\r\n\r\n' +
        'HEAD /api/4 HTTP/1.1\r\nHost: api\r\n\r\n' +
        'GET /api/5 HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n',
    );
    expect(statuses(output)).toEqual([200, 403, 200, 403, 200, 200]);
    const seen = api.requests.slice(before);
    expect(seen.map((request) => `${request.method} ${request.url}`)).toEqual([
      'GET /api/1',
      'GET /api/3',
      'HEAD /api/4',
      'GET /api/5',
    ]);
    expect(new Set(seen.map((request) => request.connection)).size).toBe(1);
    for (const request of seen) expectStamped(request);
  });
});
