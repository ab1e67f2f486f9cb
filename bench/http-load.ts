// A small HTTP/1.1 load generator over Unix sockets: N keep-alive connections, each sending the next request as
// soon as the previous answer is complete, for a fixed time or a fixed number of requests; and one large streamed
// upload. Answers must carry Content-Length (the benchmark's servers do), which keeps the client cheap next to what
// it measures.
import { createConnection, type Socket } from 'node:net';
import { nowMs } from './harness.js';

export interface LoadResult {
  requests: number;
  seconds: number;
  /** Request → complete answer, µs, sorted. */
  latenciesUs: number[];
}

const HEAD_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Calls `onAnswer` for every complete answer on the socket, in order, until the returned function is called. */
function readAnswers(socket: Socket, onAnswer: (status: number) => void): () => void {
  let pending: Buffer | null = null;
  const onData = (data: Buffer) => {
    let buffer: Buffer = pending ? Buffer.concat([pending, data]) : data;
    pending = null;
    for (;;) {
      const headEnd = buffer.indexOf(HEAD_END);
      if (headEnd < 0) break;
      const head = buffer.toString('latin1', 0, headEnd);
      const length = Number(CONTENT_LENGTH.exec(head)?.[1] ?? Number.NaN);
      if (Number.isNaN(length)) throw new Error(`an answer without Content-Length: ${head}`);
      const end = headEnd + HEAD_END.length + length;
      if (buffer.length < end) break;
      onAnswer(Number(head.slice(9, 12)));
      if (end === buffer.length) return;
      buffer = buffer.subarray(end);
    }
    pending = buffer;
  };
  socket.on('data', onData);
  return () => socket.off('data', onData);
}

/** `count` keep-alive connections to `path`, for `closedLoop` (the caller destroys them). */
export function openConnections(path: string, count: number): Promise<Socket[]> {
  return Promise.all(Array.from({ length: count }, () => connect(path)));
}

/** When a closed loop stops: after `durationMs`, or once `requests` were sent in all (then answered). */
export type LoopLimit = { durationMs: number } | { requests: number };

/**
 * Every connection sends `request` back to back, the next as soon as the previous answer is complete, until
 * `limit`. Each stops after an answer, so the connections can run another loop afterwards.
 */
export async function closedLoop(sockets: Socket[], request: Buffer, limit: LoopLimit): Promise<LoadResult> {
  const latencies: number[] = [];
  const start = nowMs();
  const deadline = 'durationMs' in limit ? start + limit.durationMs : Number.POSITIVE_INFINITY;
  let unsent = 'requests' in limit ? limit.requests : Number.POSITIVE_INFINITY;
  const detachers: (() => void)[] = [];
  try {
    await Promise.all(
      sockets.map(
        (socket) =>
          new Promise<void>((resolve, reject) => {
            if (unsent <= 0) {
              resolve();
              return;
            }
            let sentAt = nowMs();
            const onError = (error: Error) => reject(error);
            const onClose = () => reject(new Error('the server closed the connection'));
            const send = () => {
              unsent -= 1;
              socket.write(request);
            };
            const stopReading = readAnswers(socket, (status) => {
              const now = nowMs();
              if (status !== 200) reject(new Error(`status ${status}`));
              latencies.push((now - sentAt) * 1000);
              if (now >= deadline || unsent <= 0) {
                resolve();
                return;
              }
              sentAt = now;
              send();
            });
            socket.once('error', onError);
            socket.once('close', onClose);
            detachers.push(() => {
              stopReading();
              socket.off('error', onError);
              socket.off('close', onClose);
            });
            send();
          }),
      ),
    );
  } finally {
    for (const detach of detachers) detach();
  }
  const seconds = (nowMs() - start) / 1000;
  return { requests: latencies.length, seconds, latenciesUs: latencies.sort((a, b) => a - b) };
}

export async function upload(path: string, totalBytes: number, writeSize: number): Promise<number> {
  const socket = await connect(path);
  const chunk = Buffer.alloc(writeSize, 0x5a);
  const answered = new Promise<void>((resolve, reject) => {
    readAnswers(socket, (status) => (status === 200 ? resolve() : reject(new Error(`status ${status}`))));
    socket.once('error', reject);
  });
  const start = nowMs();
  socket.write(`POST /upload HTTP/1.1\r\nHost: bench\r\nContent-Length: ${totalBytes}\r\n\r\n`);
  for (let sent = 0; sent < totalBytes; sent += writeSize) {
    const part = sent + writeSize <= totalBytes ? chunk : chunk.subarray(0, totalBytes - sent);
    if (!socket.write(part)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  await answered;
  const seconds = (nowMs() - start) / 1000;
  socket.destroy();
  return totalBytes / (1 << 20) / seconds;
}
