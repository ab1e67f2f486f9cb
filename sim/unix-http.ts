// A small HTTP client over a Unix socket: the simulator reads pv-xconnect's status API with it, and tests talk
// to the mock pv-ctrl.
import { request } from 'node:http';

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
