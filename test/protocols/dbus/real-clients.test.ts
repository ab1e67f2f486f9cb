// The codec against real D-Bus clients (libdbus dbus-send, GLib gdbus, systemd busctl): the test plays a tiny
// bus built only from the codec (SASL decoder and serializer, framer, unmarshal, marshal), so each client's
// real bytes are decoded, and each client's own strict parser accepts what the codec encodes, in both byte
// orders. Needs the Debian packages dbus-bin, libglib2.0-bin and systemd.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DBusFramer,
  type DBusMessage,
  type DBusMessageInit,
  type Endianness,
  MessageFlag,
  MessageType,
  marshal,
  type SaslClientCommand,
  SaslClientDecoder,
  type SaslServerCommand,
  serializeSaslCommand,
  unmarshal,
  variant,
} from '../../../protocols/dbus/index.js';

const run = promisify(execFile);
const GUID = '0123456789abcdef0123456789abcdef';
const UNIQUE_NAME = ':1.1';

interface Session {
  sasl: SaslClientCommand[];
  messages: DBusMessage[];
  error?: unknown;
}

function saslReply(command: SaslClientCommand): SaslServerCommand | undefined {
  switch (command.command) {
    case 'AUTH':
      if (command.mechanism !== 'EXTERNAL') return { command: 'REJECTED', mechanisms: ['EXTERNAL'] };
      // Without an initial response the client is asked for one with an empty challenge.
      return command.initialResponse === undefined ? { command: 'DATA' } : { command: 'OK', guid: GUID };
    case 'DATA':
      return { command: 'OK', guid: GUID };
    case 'NEGOTIATE_UNIX_FD':
      return { command: 'AGREE_UNIX_FD' };
    case 'BEGIN':
      return undefined;
    default:
      return { command: 'ERROR', message: 'unexpected' };
  }
}

/** Hello gets a unique name, Echo gets its own arguments back, anything else an UnknownMethod error. */
function methodReply(call: DBusMessage, serial: number): DBusMessageInit | undefined {
  if (call.type !== MessageType.METHOD_CALL || call.flags & MessageFlag.NO_REPLY_EXPECTED) return undefined;
  const reply = { flags: 0, serial, replySerial: call.serial, destination: UNIQUE_NAME };
  if (call.member === 'Hello') {
    return {
      ...reply,
      type: MessageType.METHOD_RETURN,
      sender: 'org.freedesktop.DBus',
      signature: 's',
      body: [UNIQUE_NAME],
    };
  }
  const sender = call.destination ?? 'org.freedesktop.DBus';
  if (call.member === 'Echo') {
    return { ...reply, type: MessageType.METHOD_RETURN, sender, signature: call.signature, body: call.body };
  }
  return {
    ...reply,
    type: MessageType.ERROR,
    sender,
    errorName: 'org.freedesktop.DBus.Error.UnknownMethod',
    signature: 's',
    body: [`no method ${call.member}`],
  };
}

function serve(socket: Socket, session: Session, endianness: Endianness): void {
  const sasl = new SaslClientDecoder();
  let framer: DBusFramer | undefined;
  let serial = 0;
  const onMessages = (bytes: Buffer) => {
    for (const framed of framer?.push(bytes) ?? []) {
      const message = unmarshal(framed.bytes);
      session.messages.push(message);
      const reply = methodReply(message, ++serial);
      if (reply) socket.write(marshal(reply, endianness));
    }
  };
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk) => {
    try {
      if (framer) return onMessages(chunk);
      sasl.push(chunk);
      for (let command = sasl.next(); command; command = sasl.next()) {
        session.sasl.push(command);
        const reply = saslReply(command);
        if (reply) socket.write(serializeSaslCommand(reply));
      }
      if (sasl.finished) {
        framer = new DBusFramer();
        onMessages(sasl.remainder());
      }
    } catch (error) {
      session.error = error;
      socket.destroy();
    }
  });
}

describe.each<Endianness>(['l', 'B'])('real clients, replies in byte order %s', (endianness) => {
  let dir: string;
  let address: string;
  let server: Server;
  const sessions: Session[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pvx-dbus-'));
    const path = join(dir, 'bus');
    address = `unix:path=${path}`;
    server = createServer((socket) => {
      const session: Session = { sasl: [], messages: [] };
      sessions.push(session);
      serve(socket, session, endianness);
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
  });

  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs a client and returns its output and the one session it made. */
  async function client(file: string, args: string[]): Promise<{ stdout: string; session: Session }> {
    const before = sessions.length;
    const { stdout } = await run(file, args, { timeout: 15_000 });
    expect(sessions).toHaveLength(before + 1);
    const session = sessions[before] as Session;
    expect(session.error).toBeUndefined();
    return { stdout, session };
  }

  it('libdbus dbus-send', async () => {
    const { stdout, session } = await client('dbus-send', [
      `--bus=${address}`,
      '--print-reply',
      '--dest=org.example.Test',
      '/org/example',
      'org.example.Iface.Echo',
      'string:h\u00e9llo',
      'int32:-5',
      'uint64:18446744073709551615',
      'array:string:a,b',
      'dict:string:int32:k,1',
      'variant:double:1.5',
      'objpath:/a/b',
      'boolean:true',
      'byte:255',
    ]);
    expect(session.sasl).toEqual([
      { command: 'AUTH', mechanism: 'EXTERNAL', initialResponse: '30' },
      { command: 'NEGOTIATE_UNIX_FD' },
      { command: 'BEGIN' },
    ]);
    expect(session.messages.map((message) => message.member)).toEqual(['Hello', 'Echo']);
    expect(session.messages[1]).toMatchObject({
      path: '/org/example',
      interface: 'org.example.Iface',
      destination: 'org.example.Test',
      signature: 'sitasa{si}voby',
      body: ['h\u00e9llo', -5, 2n ** 64n - 1n, ['a', 'b'], [['k', 1]], variant('d', 1.5), '/a/b', true, 255],
    });
    for (const printed of [
      'string "h\u00e9llo"',
      'int32 -5',
      'uint64 18446744073709551615',
      'string "a"',
      'int32 1',
      'double 1.5',
      'object path "/a/b"',
      'boolean true',
      'byte 255',
    ]) {
      expect(stdout).toContain(printed);
    }
  });

  it('GLib gdbus (its introspection call gets an error reply)', async () => {
    const { stdout, session } = await client('gdbus', [
      'call',
      '--address',
      address,
      '--dest',
      'org.example.Test',
      '--object-path',
      '/org/example',
      '--method',
      'org.example.Iface.Echo',
      "'hi'",
      'int32 -5',
      '<1.5>',
      "@as ['a', 'b']",
      "{'k': <uint64 7>}",
    ]);
    expect(session.sasl).toEqual([
      { command: 'AUTH' },
      { command: 'AUTH', mechanism: 'EXTERNAL', initialResponse: '30' },
      { command: 'NEGOTIATE_UNIX_FD' },
      { command: 'BEGIN' },
    ]);
    expect(session.messages.map((message) => message.member)).toEqual(['Hello', 'Introspect', 'Echo']);
    expect(session.messages[2]?.body).toEqual([
      'hi',
      -5,
      variant('d', 1.5),
      ['a', 'b'],
      [['k', variant('t', 7n)]],
    ]);
    expect(stdout.trim()).toBe("('hi', -5, <1.5>, ['a', 'b'], {'k': <uint64 7>})");
  });

  it('systemd busctl', async () => {
    const { stdout, session } = await client('busctl', [
      `--address=${address}`,
      '--', // so that -7 is an argument, not an option
      'call',
      'org.example.Test',
      '/org/example',
      'org.example.Iface',
      'Echo',
      'sxa{sv}',
      'hi',
      '-7',
      '1',
      'k',
      'u',
      '9',
    ]);
    expect(session.sasl).toEqual([
      { command: 'AUTH', mechanism: 'EXTERNAL' },
      { command: 'DATA' },
      { command: 'NEGOTIATE_UNIX_FD' },
      { command: 'BEGIN' },
    ]);
    expect(session.messages.at(-1)?.body).toEqual(['hi', -7n, [['k', variant('u', 9)]]]);
    expect(stdout.trim()).toBe('sxa{sv} "hi" -7 1 "k" u 9');
  });
});
