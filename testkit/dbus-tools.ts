// The real D-Bus client libraries, each through its command-line tool (dbus-next through a node -e script), making
// one method call from inside a container: what they print, normalized to the first value of the answer or to
// `error <D-Bus error name>`.
import { fileURLToPath } from 'node:url';
import type { Container } from './container.js';

/** In a dbus-next call's arguments: the caller's own unique name (the CLI tools cannot know theirs in advance). */
export const OWN_NAME = { ownName: true } as const;

/** A method call as the tools take it: string and uint32 arguments only. */
export interface ToolCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  args?: (string | number | typeof OWN_NAME)[];
}

/** node -e: a dbus-next client that prints the first value of the answer to one call, or `error <name>`. */
const DBUS_NEXT_CLIENT = `
const dbus = require(${JSON.stringify(fileURLToPath(new URL('../node_modules/dbus-next', import.meta.url)))});
const [address, json] = process.argv.slice(1);
const call = JSON.parse(json);
const bus = dbus.sessionBus({ busAddress: address });
bus.on('error', (error) => { console.error(error.message); process.exit(2); });
bus.on('connect', async () => {
  const args = (call.args ?? []).map((arg) => (arg && arg.ownName ? bus.name : arg));
  const message = new dbus.Message({ destination: call.destination, path: call.path, interface: call.interface,
    member: call.member, signature: args.map((a) => typeof a === 'number' ? 'u' : 's').join(''), body: args });
  try {
    console.log(String((await bus.call(message)).body[0]));
  } catch (error) {
    console.log('error ' + error.type);
  }
  bus.disconnect();
});
`;

const ACCESS_DENIED = 'org.freedesktop.DBus.Error.AccessDenied';

function cliArgs(call: ToolCall): (string | number)[] {
  return (call.args ?? []).map((arg) => {
    if (typeof arg === 'object') throw new Error('only dbus-next can pass its own unique name');
    return arg;
  });
}

export type ToolClient = (container: Container, address: string, call: ToolCall) => Promise<string>;

export const TOOL_CLIENTS: Readonly<Record<string, ToolClient>> = {
  'dbus-send (libdbus)': async (container, address, call) => {
    const args = cliArgs(call).map((a) => (typeof a === 'number' ? `uint32:${a}` : `string:${a}`));
    const { stdout, stderr } = await container.exec([
      'dbus-send',
      `--bus=${address}`,
      '--print-reply',
      `--dest=${call.destination}`,
      call.path,
      `${call.interface}.${call.member}`,
      ...args,
    ]);
    const value = /^\s+(?:uint32|string) "?([^"\n]*)"?$/m.exec(stdout)?.[1];
    const error = /^Error ([\w.]+):/m.exec(stderr)?.[1];
    return value ?? (error ? `error ${error}` : `unexpected: ${stdout} ${stderr}`);
  },
  'gdbus (GLib)': async (container, address, call) => {
    const args = cliArgs(call).map((a) => (typeof a === 'number' ? `${a}` : `'${a}'`));
    const { stdout, stderr } = await container.exec([
      'gdbus',
      'call',
      '--address',
      address,
      '--dest',
      call.destination,
      '--object-path',
      call.path,
      '--method',
      `${call.interface}.${call.member}`,
      ...args,
    ]);
    const value = /^\((?:uint32 )?'?([^',]*)'?,\)$/m.exec(stdout)?.[1];
    const error = /GDBus\.Error:([\w.]+):/.exec(stderr)?.[1];
    return value ?? (error ? `error ${error}` : `unexpected: ${stdout} ${stderr}`);
  },
  'busctl (sd-bus)': async (container, address, call) => {
    const args = cliArgs(call);
    const signature = args.map((a) => (typeof a === 'number' ? 'u' : 's')).join('');
    const { stdout, stderr } = await container.exec([
      'busctl',
      `--address=${address}`,
      'call',
      call.destination,
      call.path,
      call.interface,
      call.member,
      ...(signature ? [signature, ...args.map(String)] : []),
    ]);
    const value = /^[us] "?([^"\n]*)"?$/m.exec(stdout)?.[1];
    // sd-bus turns an AccessDenied error into EACCES, and busctl prints only its text.
    const denied = /^Call failed: Access denied$/m.test(stderr);
    return value ?? (denied ? `error ${ACCESS_DENIED}` : `unexpected: ${stdout} ${stderr}`);
  },
  'dbus-next (npm)': async (container, address, call) => {
    const { stdout, stderr } = await container.exec([
      'node',
      '-e',
      DBUS_NEXT_CLIENT,
      address,
      JSON.stringify(call),
    ]);
    return stdout.trim() || `unexpected: ${stderr}`;
  },
};
