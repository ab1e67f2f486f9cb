// The live page of a running stack, on 127.0.0.1: the page itself (sim/web/, served from the package, no CDN), the
// stack's picture as a stream of snapshots (server-sent events), and the page's buttons, which go to the mock
// pv-ctrl's socket exactly as pvcontrol does (PUT /containers/{name}, PUT /daemons/{name}).
//
// Only this machine's browser may use it: it listens on 127.0.0.1, answers only requests whose Host names that
// address (a page from elsewhere cannot rebind a name to it), and acts only on requests carrying the token
// written into the page (another site cannot read it, so it cannot forge a button press).
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { LiveMonitor, Snapshot } from './live.js';
import { PACKAGE_ROOT } from './paths.js';
import { unixRequest } from './unix-http.js';

export const WEB_DIR = join(PACKAGE_ROOT, 'sim', 'web');

const ASSETS: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};
const SECURITY_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cache-Control': 'no-store',
};
const TOKEN_HEADER = 'x-pvx-token';
const MAX_BODY = 4096;

export interface LivePage {
  url: string;
  close(): Promise<void>;
}

/** Serves the live page on 127.0.0.1:`port` (0: any free port). */
export async function serveLivePage(monitor: LiveMonitor, ctrlSocket: string, port = 0): Promise<LivePage> {
  const token = randomBytes(16).toString('hex');
  const streams = new Set<ServerResponse>();
  let address = '';
  const server = createServer((req, res) => {
    handle(req, res).catch((error: Error) => send(res, 500, 'text/plain', `${error.message}\n`));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.headers.host !== address && req.headers.host !== address.replace('127.0.0.1', 'localhost')) {
      return send(res, 421, 'text/plain', 'wrong Host\n');
    }
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const asset = ASSETS[path];
    if (req.method === 'GET' && asset) {
      const text = readFileSync(join(WEB_DIR, asset.file), 'utf8').replace('{{token}}', token);
      return send(res, 200, asset.type, text);
    }
    if (req.method === 'GET' && path === '/api/state') {
      return send(res, 200, 'application/json', JSON.stringify(monitor.latest() ?? (await monitor.tick())));
    }
    if (req.method === 'GET' && path === '/api/events') return stream(res);
    const action = /^\/api\/(containers|daemons)\/([^/]+)$/.exec(path);
    if (req.method === 'POST' && action) {
      if (req.headers[TOKEN_HEADER] !== token)
        return send(res, 403, 'text/plain', 'missing or wrong token\n');
      const body = await readBody(req);
      // Through the mock pv-ctrl, as pvcontrol does it: the answer is pv-ctrl's.
      const answer = await unixRequest(ctrlSocket, 'PUT', `/${action[1]}/${action[2]}`, body);
      void monitor.tick();
      return send(res, answer.status, 'application/json', answer.body);
    }
    send(res, 404, 'text/plain', 'not found\n');
  }

  function stream(res: ServerResponse): void {
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/event-stream',
      Connection: 'keep-alive',
    });
    const push = (snapshot: Snapshot) => res.write(`data: ${JSON.stringify(snapshot)}\n\n`);
    const latest = monitor.latest();
    if (latest) push(latest);
    const unsubscribe = monitor.subscribe(push);
    streams.add(res);
    res.on('close', () => {
      unsubscribe();
      streams.delete(res);
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url: `http://${address}/`,
    async close() {
      for (const res of streams) res.end();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, type: string, text: string): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(text),
  });
  res.end(text);
}
