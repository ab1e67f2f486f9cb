// An echo service on a D-Bus bus, run as its own process (`node dist/testkit/dbus-echo-service.js BUS NAME PATH`):
// it owns NAME and answers at PATH Echo(any) with the same value and Flood(u n) with n `Tick` signals, then an empty
// reply. Prints `ready` once it owns the name.
import { connectIn } from '../native/namespace.js';
import { DBusPeer } from './dbus-peer.js';

const [bus, name, path] = process.argv.slice(2);
if (!bus || !name || !path) {
  console.error('usage: dbus-echo-service BUS-SOCKET NAME OBJECT-PATH');
  process.exit(2);
}
const peer = await DBusPeer.connect(await connectIn({ pid: 0, path: bus }));
peer.serve(async ({ message }) => {
  if (message.member === 'Echo') return { signature: message.signature, body: message.body };
  if (message.member !== 'Flood') return { error: 'org.freedesktop.DBus.Error.UnknownMethod', message: '' };
  for (let i = 0; i < Number(message.body[0]); i++) {
    if (!peer.emitSignal(path, name, 'Tick', 'u', [i])) {
      await new Promise<void>((resolve) => peer.socket.once('drain', resolve));
    }
  }
  return {};
});
await peer.callBus('RequestName', 'su', [name, 4]);
console.log('ready');
