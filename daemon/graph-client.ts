// Reads the xconnect-graph from pv-ctrl: HTTP over its Unix socket, bounded in size and time.
import { request } from './node-http.js';

export interface GraphFetchOptions {
  socketPath: string;
  /** Deadline of the whole fetch, from connect to the last byte, whatever pv-ctrl does byte by byte. */
  timeoutMs: number;
  maxBytes: number;
}

export const MAX_GRAPH_BYTES = 4 * 1024 * 1024;

/** The deadline of one fetch for a poll interval: min(interval, 10 s), at least 1 s. */
export function fetchDeadlineMs(intervalMs: number): number {
  return Math.max(1000, Math.min(intervalMs, 10_000));
}

/** The body of a 200 answer to `GET /xconnect-graph`; anything else rejects with the reason. */
export function fetchGraph({ socketPath, timeoutMs, maxBytes }: GraphFetchOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const fail = (reason: string) => {
      clearTimeout(deadline);
      req.destroy();
      reject(new Error(reason));
    };
    // An overall deadline, not an idle timeout: a server trickling one byte at a time cannot hold a poll.
    const deadline = setTimeout(() => fail(`pv-ctrl did not answer within ${timeoutMs} ms`), timeoutMs);
    const req = request({ socketPath, path: '/xconnect-graph', method: 'GET' }, (res) => {
      const parts: Buffer[] = [];
      let size = 0;
      res.on('data', (part: Buffer) => {
        size += part.length;
        if (size > maxBytes) fail(`pv-ctrl graph is larger than ${maxBytes} bytes`);
        else parts.push(part);
      });
      res.on('end', () => {
        clearTimeout(deadline);
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
    req.on('error', (error) => {
      clearTimeout(deadline);
      reject(new Error(`pv-ctrl unreachable at ${socketPath}: ${error.message}`));
    });
    req.end();
  });
}
