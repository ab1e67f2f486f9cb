import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DBusProtocolError,
  hexDecode,
  hexEncode,
  MAX_SASL_LINE_LENGTH,
  marshal,
  parseSaslClientLine,
  parseSaslServerLine,
  type SaslClientCommand,
  SaslClientDecoder,
  type SaslCommand,
  type SaslServerCommand,
  SaslServerDecoder,
  serializeSaslCommand,
  uidFromHex,
  uidToHex,
} from '../../../protocols/dbus/index.js';

const line = (command: SaslCommand) => serializeSaslCommand(command).toString('latin1');

describe('SASL commands', () => {
  const clientCases: [string, SaslClientCommand][] = [
    ['AUTH', { command: 'AUTH' }],
    ['AUTH EXTERNAL', { command: 'AUTH', mechanism: 'EXTERNAL' }],
    ['AUTH EXTERNAL 31303031', { command: 'AUTH', mechanism: 'EXTERNAL', initialResponse: '31303031' }],
    ['DATA', { command: 'DATA' }],
    ['DATA 31303031', { command: 'DATA', data: '31303031' }],
    ['BEGIN', { command: 'BEGIN' }],
    ['CANCEL', { command: 'CANCEL' }],
    ['NEGOTIATE_UNIX_FD', { command: 'NEGOTIATE_UNIX_FD' }],
    ['ERROR', { command: 'ERROR' }],
    ['ERROR bad mechanism, try again', { command: 'ERROR', message: 'bad mechanism, try again' }],
    ['STARTTLS', { command: 'UNKNOWN', line: 'STARTTLS' }],
  ];
  const serverCases: [string, SaslServerCommand][] = [
    ['REJECTED', { command: 'REJECTED', mechanisms: [] }],
    ['REJECTED EXTERNAL', { command: 'REJECTED', mechanisms: ['EXTERNAL'] }],
    [
      'REJECTED EXTERNAL DBUS_COOKIE_SHA1 ANONYMOUS',
      { command: 'REJECTED', mechanisms: ['EXTERNAL', 'DBUS_COOKIE_SHA1', 'ANONYMOUS'] },
    ],
    ['OK 1234deadbeef5678deadbeef90abcdef', { command: 'OK', guid: '1234deadbeef5678deadbeef90abcdef' }],
    ['DATA', { command: 'DATA' }],
    ['DATA 6f6b', { command: 'DATA', data: '6f6b' }],
    ['ERROR', { command: 'ERROR' }],
    ['ERROR Unknown command', { command: 'ERROR', message: 'Unknown command' }],
    ['AGREE_UNIX_FD', { command: 'AGREE_UNIX_FD' }],
    ['BEGIN', { command: 'UNKNOWN', line: 'BEGIN' }],
  ];

  it.each(clientCases)('client %j parses and serializes back', (text, command) => {
    expect(parseSaslClientLine(text)).toEqual(command);
    expect(line(command)).toBe(`${text}\r\n`);
  });

  it.each(serverCases)('server %j parses and serializes back', (text, command) => {
    expect(parseSaslServerLine(text)).toEqual(command);
    expect(line(command)).toBe(`${text}\r\n`);
  });

  it.each([
    'AUTH EXTERNAL 3130 3031', // one token too many
    'AUTH  EXTERNAL', // empty token
    'AUTH EXTERNAL ', // trailing space
    'BEGIN now',
    'NEGOTIATE_UNIX_FD yes',
    'DATA 31 32',
    'auth EXTERNAL', // commands are case-sensitive
    'AUTH EXTERNAL\x01',
    'AUTH EXTERN\u00e9L',
    '',
  ])('client line %j that fits no grammar is UNKNOWN', (text) => {
    expect(parseSaslClientLine(text)).toEqual({ command: 'UNKNOWN', line: text });
  });

  it.each(['OK', 'OK a b', 'REJECTED ', 'AGREE_UNIX_FD now', 'ERROR \x7f'])(
    'server line %j is UNKNOWN',
    (text) => {
      expect(parseSaslServerLine(text)).toEqual({ command: 'UNKNOWN', line: text });
    },
  );

  it('serializing then parsing any line gives the line back, byte for byte', () => {
    const lineArb = fc
      .string({
        unit: fc.constantFrom(...'AUTHDATOKREJCGINX_ 0123abc\t\x00\r\n\x7f\xe9'.split('')),
        maxLength: 30,
      })
      .filter((text) => !text.includes('\r\n'));
    fc.assert(
      fc.property(lineArb, (text) => {
        expect(line(parseSaslClientLine(text))).toBe(`${text}\r\n`);
        expect(line(parseSaslServerLine(text))).toBe(`${text}\r\n`);
      }),
      { seed: 7, numRuns: 2000 },
    );
  });

  it.each<SaslCommand>([
    { command: 'AUTH', mechanism: 'EXTER NAL' },
    { command: 'AUTH', initialResponse: '30' },
    { command: 'DATA', data: '' },
    { command: 'OK', guid: 'a\r\nb' },
    { command: 'REJECTED', mechanisms: [''] },
    { command: 'ERROR', message: 'line\r\nBEGIN' },
    { command: 'UNKNOWN', line: 'X\r\nBEGIN' },
    { command: 'UNKNOWN', line: 'snowman \u2603' },
  ])('refuses to serialize %j, which is not one valid line', (command) => {
    expect(() => serializeSaslCommand(command)).toThrow(DBusProtocolError);
  });

  it('refuses to serialize a line over the cap', () => {
    expect(line({ command: 'DATA', data: 'a'.repeat(MAX_SASL_LINE_LENGTH - 7) })).toHaveLength(
      MAX_SASL_LINE_LENGTH,
    );
    expect(() =>
      serializeSaslCommand({ command: 'DATA', data: 'a'.repeat(MAX_SASL_LINE_LENGTH - 6) }),
    ).toThrow(expect.objectContaining({ code: 'SASL_LINE_TOO_LONG' }));
  });
});

describe('hex helpers', () => {
  it('encodes a uid as hex of its decimal ASCII and back', () => {
    expect(uidToHex(1001)).toBe('31303031');
    expect(uidToHex(0)).toBe('30');
    expect(uidFromHex('31303031')).toBe(1001);
    expect(uidFromHex('3435')).toBe(45);
    expect(uidFromHex('34323934393637323935')).toBe(4294967295);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (uid) => {
        expect(uidFromHex(uidToHex(uid))).toBe(uid);
      }),
      { seed: 3, numRuns: 100 },
    );
  });

  it.each([
    ['3', 'BAD_HEX'],
    ['zz', 'BAD_HEX'],
    ['', 'BAD_UID'],
    ['2d31', 'BAD_UID'], // "-1"
    ['31 30', 'BAD_HEX'],
    ['34323934393637323936', 'BAD_UID'], // 2^32
    ['3130303130303130303130', 'BAD_UID'], // 11 digits
  ])('rejects %j as a uid with %s', (hex, code) => {
    expect(() => uidFromHex(hex)).toThrow(expect.objectContaining({ name: 'DBusProtocolError', code }));
  });

  it('encodes and decodes bytes in either case', () => {
    expect(hexEncode(Buffer.from([0, 0xab, 0xff]))).toBe('00abff');
    expect(hexEncode('10')).toBe('3130');
    expect(hexDecode('00ABff')).toEqual(Buffer.from([0, 0xab, 0xff]));
    expect(() => uidToHex(-1)).toThrow(DBusProtocolError);
    expect(() => uidToHex(1.5)).toThrow(DBusProtocolError);
  });
});

// The Hello call every client sends right after BEGIN.
const hello = marshal({
  type: 1,
  flags: 0,
  serial: 1,
  path: '/org/freedesktop/DBus',
  interface: 'org.freedesktop.DBus',
  member: 'Hello',
  destination: 'org.freedesktop.DBus',
});

interface ClientTranscript {
  name: string;
  /** The client's writes, in order, as docs/dbus.md records them. */
  writes: string[];
  commands: SaslClientCommand[];
}

const clients: ClientTranscript[] = [
  {
    name: 'libdbus dbus-send',
    writes: ['\0AUTH EXTERNAL 30\r\n', 'NEGOTIATE_UNIX_FD\r\n', 'BEGIN\r\n<hello>'],
    commands: [
      { command: 'AUTH', mechanism: 'EXTERNAL', initialResponse: '30' },
      { command: 'NEGOTIATE_UNIX_FD' },
      { command: 'BEGIN' },
    ],
  },
  {
    name: 'GLib gdbus',
    writes: ['\0AUTH\r\n', 'AUTH EXTERNAL 31303031\r\n', 'NEGOTIATE_UNIX_FD\r\n', 'BEGIN\r\n', '<hello>'],
    commands: [
      { command: 'AUTH' },
      { command: 'AUTH', mechanism: 'EXTERNAL', initialResponse: '31303031' },
      { command: 'NEGOTIATE_UNIX_FD' },
      { command: 'BEGIN' },
    ],
  },
  {
    name: 'systemd busctl',
    writes: ['\0AUTH EXTERNAL\r\nDATA\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n<hello>'],
    commands: [
      { command: 'AUTH', mechanism: 'EXTERNAL' },
      { command: 'DATA' },
      { command: 'NEGOTIATE_UNIX_FD' },
      { command: 'BEGIN' },
    ],
  },
  {
    name: 'dbus-next',
    writes: ['\0', 'AUTH EXTERNAL 31303031\r\n', 'BEGIN\r\n', '<hello>'],
    commands: [{ command: 'AUTH', mechanism: 'EXTERNAL', initialResponse: '31303031' }, { command: 'BEGIN' }],
  },
  {
    name: 'dbus-native',
    writes: ['\0AUTH EXTERNAL 31303031\r\n', 'BEGIN\r\n', '<hello>'],
    commands: [{ command: 'AUTH', mechanism: 'EXTERNAL', initialResponse: '31303031' }, { command: 'BEGIN' }],
  },
];

const bytesOf = (writes: string[]) =>
  Buffer.concat(
    writes.map((write) =>
      write.endsWith('<hello>')
        ? Buffer.concat([Buffer.from(write.slice(0, -7), 'latin1'), hello])
        : Buffer.from(write, 'latin1'),
    ),
  );

/** Feeds the chunks one by one, draining commands after each; returns the commands and the remainder. */
function decodeClient(chunks: Buffer[]): { commands: SaslClientCommand[]; rest: Buffer } {
  const decoder = new SaslClientDecoder();
  const commands: SaslClientCommand[] = [];
  const rest: Buffer[] = [];
  for (const chunk of chunks) {
    if (decoder.finished) {
      rest.push(chunk);
      continue;
    }
    decoder.push(chunk);
    for (let command = decoder.next(); command; command = decoder.next()) commands.push(command);
  }
  return { commands, rest: Buffer.concat([decoder.remainder(), ...rest]) };
}

/** Every split into two chunks, every byte alone, and the whole stream as one chunk. */
function chunkings(stream: Buffer): Buffer[][] {
  const splits = Array.from({ length: stream.length + 1 }, (_, i) => [
    stream.subarray(0, i),
    stream.subarray(i),
  ]);
  const bytes = Array.from(stream, (_, i) => stream.subarray(i, i + 1));
  return [...splits, bytes, [stream]];
}

describe('SaslClientDecoder', () => {
  it.each(clients)(
    'decodes $name: as written, split anywhere, byte by byte, pipelined',
    ({ writes, commands }) => {
      const stream = bytesOf(writes);
      for (const chunks of [writes.map((write) => bytesOf([write])), ...chunkings(stream)]) {
        const decoded = decodeClient(chunks);
        expect(decoded.commands).toEqual(commands);
        expect(decoded.rest).toEqual(hello);
      }
    },
  );

  it('hands back the bytes after BEGIN untouched, as a view of the chunk they came in', () => {
    const chunk = bytesOf(['\0AUTH EXTERNAL 30\r\nBEGIN\r\n<hello>']);
    const decoder = new SaslClientDecoder();
    decoder.push(chunk);
    expect(decoder.next()).toEqual({ command: 'AUTH', mechanism: 'EXTERNAL', initialResponse: '30' });
    expect(decoder.next()).toEqual({ command: 'BEGIN' });
    expect(decoder.finished).toBe(true);
    expect(decoder.next()).toBeUndefined();
    const rest = decoder.remainder();
    expect(rest).toEqual(hello);
    expect(rest.buffer).toBe(chunk.buffer);
    expect(rest.byteOffset).toBe(chunk.byteOffset + chunk.length - hello.length);
    expect(decoder.remainder()).toHaveLength(0);
  });

  it('does not parse message bytes that look like lines after BEGIN', () => {
    const decoder = new SaslClientDecoder();
    decoder.push(Buffer.from('\0BEGIN\r\nAUTH\r\nCANCEL\r\n'));
    expect(decoder.next()).toEqual({ command: 'BEGIN' });
    expect(decoder.next()).toBeUndefined();
    expect(decoder.remainder().toString()).toBe('AUTH\r\nCANCEL\r\n');
  });

  it('waits for the NUL byte, which may come alone, and rejects a stream without it', () => {
    const decoder = new SaslClientDecoder();
    decoder.push(Buffer.alloc(0));
    expect(decoder.next()).toBeUndefined();
    decoder.push(Buffer.from([0]));
    expect(decoder.next()).toBeUndefined();
    decoder.push(Buffer.from('AUTH\r\n'));
    expect(decoder.next()).toEqual({ command: 'AUTH' });

    const missing = new SaslClientDecoder();
    missing.push(Buffer.from('AUTH EXTERNAL 30\r\n'));
    expect(() => missing.next()).toThrow(expect.objectContaining({ code: 'SASL_MISSING_NUL' }));
  });

  it('treats a second NUL as part of a line, not as another credentials byte', () => {
    const decoder = new SaslClientDecoder();
    decoder.push(Buffer.from('\0\0AUTH\r\n', 'latin1'));
    expect(decoder.next()).toEqual({ command: 'UNKNOWN', line: '\0AUTH' });
  });

  it('accepts a line of exactly 16 KiB with its CRLF and rejects a longer one, however it is chunked', () => {
    const longest = `DATA ${'a'.repeat(MAX_SASL_LINE_LENGTH - 7)}\r\n`;
    const tooLong = `DATA ${'a'.repeat(MAX_SASL_LINE_LENGTH - 6)}\r\n`;
    for (const chunkSize of [1, 1000, 20000]) {
      const feed = (text: string) => {
        const decoder = new SaslClientDecoder();
        const bytes = Buffer.from(`\0${text}`);
        let command: SaslClientCommand | undefined;
        for (let i = 0; i < bytes.length; i += chunkSize) {
          decoder.push(bytes.subarray(i, i + chunkSize));
          command = decoder.next() ?? command;
        }
        return command;
      };
      expect(feed(longest)).toEqual({ command: 'DATA', data: 'a'.repeat(MAX_SASL_LINE_LENGTH - 7) });
      expect(() => feed(tooLong)).toThrow(expect.objectContaining({ code: 'SASL_LINE_TOO_LONG' }));
    }
  });

  it('rejects 16 KiB without a line end before the rest of the line arrives', () => {
    const decoder = new SaslClientDecoder();
    decoder.push(Buffer.from([0]));
    decoder.push(Buffer.alloc(MAX_SASL_LINE_LENGTH - 1, 0x41));
    expect(decoder.next()).toBeUndefined();
    decoder.push(Buffer.from('A'));
    expect(() => decoder.next()).toThrow(expect.objectContaining({ code: 'SASL_LINE_TOO_LONG' }));
  });
});

describe('SaslServerDecoder', () => {
  const replies: SaslServerCommand[] = [
    { command: 'REJECTED', mechanisms: ['EXTERNAL'] },
    { command: 'OK', guid: '0123456789abcdef0123456789abcdef' },
    { command: 'AGREE_UNIX_FD' },
  ];
  const stream = Buffer.concat([...replies.map(serializeSaslCommand), hello]);

  it('decodes replies split anywhere and leaves what follows the last one to the caller', () => {
    for (const chunks of chunkings(stream)) {
      const decoder = new SaslServerDecoder();
      const decoded: SaslServerCommand[] = [];
      const later: Buffer[] = [];
      for (const chunk of chunks) {
        if (decoded.length === replies.length) {
          later.push(chunk);
          continue;
        }
        decoder.push(chunk);
        // The caller knows three replies are due and stops there: the rest is the message stream.
        while (decoded.length < replies.length) {
          const reply = decoder.next();
          if (!reply) break;
          decoded.push(reply);
        }
      }
      expect(decoded).toEqual(replies);
      expect(Buffer.concat([decoder.remainder(), ...later])).toEqual(hello);
    }
  });

  it('needs no NUL byte and applies the same line cap', () => {
    const decoder = new SaslServerDecoder();
    decoder.push(Buffer.alloc(MAX_SASL_LINE_LENGTH, 0x41));
    expect(() => decoder.next()).toThrow(expect.objectContaining({ code: 'SASL_LINE_TOO_LONG' }));
  });
});
