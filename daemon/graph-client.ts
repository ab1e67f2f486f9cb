// Reads the xconnect-graph from pv-ctrl: HTTP over its Unix socket, bounded in size and time.
import { request } from './node-http.js';

export interface GraphFetchOptions {
  socketPath: string;
  timeoutMs: number;
  maxBytes: number;
}

export const MAX_GRAPH_BYTES = 4 * 1024 * 1024;

/** The body of a 200 answer to `GET /xconnect-graph`; anything else rejects with the reason. */
export function fetchGraph({ socketPath, timeoutMs, maxBytes }: GraphFetchOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const fail = (reason: string) => {
      req.destroy();
      reject(new Error(reason));
    };
    const req = request({ socketPath, path: '/xconnect-graph', method: 'GET', timeout: timeoutMs }, (res) => {
      const parts: Buffer[] = [];
      let size = 0;
      res.on('data', (part: Buffer) => {
        size += part.length;
        if (size > maxBytes) fail(`pv-ctrl graph is larger than ${maxBytes} bytes`);
        else parts.push(part);
      });
      res.on('end', () => {
        const body = Buffer.concat(parts).toString('utf8');
        if (res.statusCode !== 200) {
          reject(new Error(`pv-ctrl answered ${res.statusCode}: ${body.slice(0, 200).trim()}`));
        } else {
          resolve(body);
        }
      });
      res.on('error', (error) => fail(`pv-ctrl response broken: ${error.message}`));
      res.on('aborted', () => fail('pv-ctrl closed the connection mid-response'));
    });
    req.on('timeout', () => fail(`pv-ctrl did not answer within ${timeoutMs} ms`));
    req.on('error', (error) => reject(new Error(`pv-ctrl unreachable at ${socketPath}: ${error.message}`)));
    req.end();
  });
}
