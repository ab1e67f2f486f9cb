// The provider of the unix bench, as a process of its own (on the host, or inside a container for the links whose
// provider is in one): `node unix-peer.js DIR SINK_BYTES` listens on DIR/echo.sock (every byte back; a half-close
// answered with one) and DIR/sink.sock (reads, and answers one byte "done" once SINK_BYTES have arrived on that
// connection: no half-close needed, which upstream's relay does not pass on). Prints "ready" once both listen.
import { rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';

const [dir, sinkBytesArgument] = process.argv.slice(2);
const sinkBytes = Number(sinkBytesArgument);
if (!dir || !Number.isSafeInteger(sinkBytes) || sinkBytes < 1) {
  console.error('usage: unix-peer DIR SINK_BYTES');
  process.exit(2);
}

function echo(socket: Socket): void {
  socket.on('data', (data: Buffer) => socket.write(data));
  socket.on('end', () => socket.end());
  socket.on('error', () => {});
}

function sink(socket: Socket): void {
  let received = 0;
  socket.on('data', (data: Buffer) => {
    const before = received;
    received += data.length;
    if (before < sinkBytes && received >= sinkBytes) socket.write('d');
  });
  socket.on('end', () => socket.end());
  socket.on('error', () => {});
}

let listening = 0;
for (const [name, serve] of [
  ['echo.sock', echo],
  ['sink.sock', sink],
] as const) {
  const path = join(dir, name);
  rmSync(path, { force: true });
  createServer(serve).listen({ path, backlog: 4096 }, () => {
    listening += 1;
    if (listening === 2) console.log('ready');
  });
}
