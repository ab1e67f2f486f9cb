import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type DBusMessage,
  DBusProtocolError,
  marshal,
  readRoutingFields,
  unmarshal,
} from '../../../protocols/dbus/index.js';
import { messageArb, mutatedMessageArb } from './arbitraries.js';

type Routing = Pick<
  DBusMessage,
  'serial' | 'path' | 'interface' | 'member' | 'destination' | 'replySerial' | 'unixFds'
>;
const routing = ({ serial, path, interface: iface, member, destination, replySerial, unixFds }: Routing) => ({
  serial,
  path,
  interface: iface,
  member,
  destination,
  replySerial,
  unixFds,
});

describe('readRoutingFields', () => {
  it('reads the names of each message, also after a message with names of the same length', () => {
    const call = (member: string, path: string): DBusMessage => ({
      type: 1,
      flags: 0,
      serial: 1,
      path,
      interface: 'org.pvx.A',
      member,
      destination: 'org.pvx.A',
      signature: '',
      body: [],
      unixFds: 0,
    });
    for (const [member, path] of [
      ['Echo', '/a/b'],
      ['Echo', '/a/b'],
      ['Ecko', '/a/c'],
      ['Echo', '/a/b'],
    ] as const) {
      expect(readRoutingFields(marshal(call(member, path)))).toMatchObject({ member, path });
    }
  });

  it('reads the same names, serials and fd count as the full reader, in both byte orders', () => {
    fc.assert(
      fc.property(messageArb(), fc.constantFrom('l' as const, 'B' as const), (message, endianness) => {
        const bytes = marshal(message, endianness);
        const full = unmarshal(bytes);
        expect(readRoutingFields(bytes)).toEqual({
          type: full.type,
          flags: full.flags,
          serial: full.serial,
          littleEndian: endianness === 'l',
          ...(full.path !== undefined && { path: full.path }),
          ...(full.interface !== undefined && { interface: full.interface }),
          ...(full.member !== undefined && { member: full.member }),
          ...(full.destination !== undefined && { destination: full.destination }),
          ...(full.replySerial !== undefined && { replySerial: full.replySerial }),
          unixFds: full.unixFds,
        });
      }),
      { numRuns: 300 },
    );
  });

  it('agrees with the full reader on mutated messages: the same fields, or a DBusProtocolError', () => {
    fc.assert(
      fc.property(mutatedMessageArb(), (bytes) => {
        let full: ReturnType<typeof unmarshal> | undefined;
        try {
          full = unmarshal(bytes);
        } catch {
          // The body may be what is wrong: the walk does not read it, but it must not misread the header.
        }
        let fields: ReturnType<typeof readRoutingFields> | undefined;
        try {
          fields = readRoutingFields(bytes);
        } catch (error) {
          expect(error).toBeInstanceOf(DBusProtocolError);
          expect(full).toBeUndefined();
          return;
        }
        if (full === undefined) return;
        expect(routing(fields as ReturnType<typeof readRoutingFields>)).toEqual(routing(full));
      }),
      { numRuns: 500 },
    );
  });
});
