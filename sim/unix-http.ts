// HTTP over Unix sockets for the simulator and the tests: a small client (pv-xconnect's status API, the mock
// pv-ctrl) and a server whose close() also ends open keep-alive connections and removes its socket.
import { rmSync } from 'node:fs';
import { createServer, type RequestListener, request } from 'node:http';
import type { Socket } from 'node:net';

export interface UnixHttpServer {
  close(): Promise<void>;
}

export async function serveUnixHttp(socketPath: string, handler: RequestListener): Promise<UnixHttpServer> {
  rmSync(socketPath, { force: true });
  const server = createServer(handler);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  return {
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      rmSync(socketPath, { force: true });
    },
  };
}

export interface UnixHttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export function unixRequest(
  socketPath: string,
  method: string,
  path: string,
  body?: string,
  timeoutMs = 5000,
): Promise<UnixHttpResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method, path, headers: { Host: 'localhost' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () =>
      req.destroy(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`)),
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** GET a JSON document; rejects on a non-200 answer. */
export async function getJson<T>(socketPath: string, path: string): Promise<T> {
  const response = await unixRequest(socketPath, 'GET', path);
  if (response.status !== 200) throw new Error(`GET ${path}: ${response.status} ${response.body.trim()}`);
  return JSON.parse(response.body) as T;
}
