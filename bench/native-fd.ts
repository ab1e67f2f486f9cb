// Throughput of an FdSocket pair against a plain `net` pair over a Unix socket, both in this process,
// the writer honouring backpressure, the same write high-water mark on both sides. Reports wall-clock
// MB/s and, as a check less sensitive to other load on the machine, MB per CPU second (user + system of
// this process, both ends included). Prints a table and writes bench/results/native-fd.json.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type IpcNetConnectOpts, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DuplexOptions } from 'node:stream';
import type { Chunk } from '../native/fd-socket.js';
import { socketPair } from '../testkit/sockets.js';
import { percentile, record } from './harness.js';

const HIGH_WATER_MARK = 256 * 1024;
/** Each case runs this many times, alternating transports; the median counts. */
const ROUNDS = 5;

interface Case {
  writeSize: number;
  totalBytes: number;
}

const CASES: Case[] = [
  { writeSize: 64 * 1024, totalBytes: 1024 * 1024 * 1024 },
  { writeSize: 1024, totalBytes: 64 * 1024 * 1024 },
];

/** The part of a stream both transports share: enough to write with backpressure. */
interface Writer {
  write(data: Buffer): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

interface Pair {
  writer: Writer;
  /** Calls onBytes for every chunk the reader receives. */
  read(onBytes: (length: number) => void): void;
  close(): Promise<void>;
}

async function fdSocketPair(): Promise<Pair> {
  const [writer, reader] = socketPair({ highWaterMark: HIGH_WATER_MARK });
  return {
    writer,
    read: (onBytes) => reader.on('data', ({ data }: Chunk) => onBytes(data.length)),
    close: async () => {
      const closed = Promise.all([once(writer, 'close'), once(reader, 'close')]);
      writer.destroy();
      reader.destroy();
      await closed;
    },
  };
}

async function netPair(): Promise<Pair> {
  const dir = mkdtempSync(join(tmpdir(), 'pvx-bench-'));
  const path = join(dir, 'net.sock');
  const server = createServer();
  server.listen(path);
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const options: IpcNetConnectOpts & DuplexOptions = { path, writableHighWaterMark: HIGH_WATER_MARK };
  const writer = createConnection(options);
  await once(writer, 'connect');
  const [reader] = await accepted;
  return {
    writer,
    read: (onBytes) => reader.on('data', (data: Buffer) => onBytes(data.length)),
    close: async () => {
      writer.destroy();
      reader.destroy();
      server.close();
      await once(server, 'close');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface Timing {
  seconds: number;
  cpuSeconds: number;
}

/** Time to move totalBytes in writeSize writes from writer to reader. */
async function measure(open: () => Promise<Pair>, { writeSize, totalBytes }: Case): Promise<Timing> {
  const pair = await open();
  const chunk = Buffer.alloc(writeSize, 0x5a);
  const writes = totalBytes / writeSize;
  const cpuStarted = process.cpuUsage();
  const started = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    let received = 0;
    pair.read((length) => {
      received += length;
      if (received === totalBytes) resolve();
    });
    let written = 0;
    const writeMore = () => {
      while (written < writes) {
        written++;
        if (!pair.writer.write(chunk)) {
          pair.writer.once('drain', writeMore);
          return;
        }
      }
    };
    writeMore();
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const cpu = process.cpuUsage(cpuStarted);
  await pair.close();
  return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

export async function run(): Promise<void> {
  const transports = { FdSocket: fdSocketPair, net: netPair };
  type Transport = keyof typeof transports;
  const rows = [];
  for (const benchCase of CASES) {
    const timings: Record<Transport, Timing[]> = { FdSocket: [], net: [] };
    for (let round = 0; round < ROUNDS; round++)
      for (const [name, open] of Object.entries(transports) as [Transport, () => Promise<Pair>][])
        timings[name].push(await measure(open, benchCase));
    const rate = (name: Transport, key: keyof Timing) =>
      benchCase.totalBytes / median(timings[name].map((timing) => timing[key])) / 1e6;
    rows.push({
      writeSize: benchCase.writeSize,
      totalBytes: benchCase.totalBytes,
      fdSocketMBps: Math.round(rate('FdSocket', 'seconds')),
      netMBps: Math.round(rate('net', 'seconds')),
      ratio: Number((rate('FdSocket', 'seconds') / rate('net', 'seconds')).toFixed(3)),
      fdSocketMBperCpuSecond: Math.round(rate('FdSocket', 'cpuSeconds')),
      netMBperCpuSecond: Math.round(rate('net', 'cpuSeconds')),
      cpuRatio: Number((rate('FdSocket', 'cpuSeconds') / rate('net', 'cpuSeconds')).toFixed(3)),
      timings,
    });
  }

  console.log(`native-fd: Unix stream socket throughput, median of ${ROUNDS} runs, write HWM 256 KiB`);
  record(
    'native-fd',
    { highWaterMark: HIGH_WATER_MARK, rounds: ROUNDS, results: rows },
    rows.map((row) => ({
      write: `${row.writeSize / 1024} KiB`,
      total: `${row.totalBytes / 1024 / 1024} MiB`,
      'FdSocket MB/s': row.fdSocketMBps,
      'net MB/s': row.netMBps,
      'FdSocket/net': row.ratio,
      'FdSocket MB/cpu-s': row.fdSocketMBperCpuSecond,
      'net MB/cpu-s': row.netMBperCpuSecond,
      'cpu FdSocket/net': row.cpuRatio,
    })),
  );
}
