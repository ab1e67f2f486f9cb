// The generated codec: every request and event of every generated protocol round-trips with random arguments, and
// the wire format matches hand-computed bytes and rejects what libwayland would not read.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FdQueue } from '../../../native/fds.js';
import { wl_display, wl_registry, wl_shm } from '../../../protocols/wayland/generated/wayland.generated.js';
import { protocols } from '../../../protocols/wayland/index.js';
import type { MessageSpec } from '../../../protocols/wayland/spec.js';
import {
  type ArgValue,
  decodeArgs,
  decodeMessage,
  encodeMessage,
  MAX_MESSAGE_SIZE,
  type MessageArgs,
  messageNamed,
  readHeader,
  WaylandWireError,
} from '../../../protocols/wayland/wire.js';
import { arbitraryArgs } from './arbitraries.js';

const U32_MAX = 0xffffffff;

function roundTrip(objectId: number, message: MessageSpec, args: Record<string, ArgValue>): void {
  const { data, fds } = encodeMessage(objectId, message, args as MessageArgs<MessageSpec>);
  expect(readHeader(data, 0)).toEqual({ objectId, opcode: message.opcode, size: data.length });
  expect(data.length % 4).toBe(0);
  expect(fds).toEqual(message.args.filter((arg) => arg.type === 'fd').map((arg) => args[arg.name]));
  expect(decodeMessage(message, data, 0, data.length, fds)).toEqual(args);
}

describe('the generated tables', () => {
  const messages = protocols.flatMap((protocol) =>
    protocol.interfaces.flatMap((iface) =>
      [...iface.requests, ...iface.events].map((message) => ({ iface, message })),
    ),
  );

  it('cover wayland.xml and the wayland-protocols set, with opcodes in XML order', () => {
    const names = new Set(protocols.flatMap((protocol) => protocol.interfaces.map((iface) => iface.name)));
    for (const expected of [
      'wl_display',
      'wl_registry',
      'wl_shm',
      'wl_keyboard',
      'xdg_wm_base',
      'zwp_linux_dmabuf_v1',
      'wp_viewporter',
      'wp_presentation',
      'zxdg_decoration_manager_v1',
      'zwp_text_input_manager_v3',
      'zwp_pointer_constraints_v1',
      'zwp_relative_pointer_manager_v1',
      'ext_session_lock_manager_v1',
    ])
      expect(names).toContain(expected);
    for (const { iface } of messages) {
      expect(iface.requests.map((message) => message.opcode)).toEqual(
        iface.requests.map((_, index) => index),
      );
      expect(iface.events.map((message) => message.opcode)).toEqual(iface.events.map((_, index) => index));
    }
    expect(messageNamed(wl_registry.requests, 'bind').args[1]).toEqual({ name: 'id', type: 'new_id' });
    expect(messageNamed(wl_shm.requests, 'create_pool').args.map((arg) => arg.type)).toEqual([
      'new_id',
      'fd',
      'int',
    ]);
    expect(messages.length).toBeGreaterThan(500);
  });

  for (const protocol of protocols) {
    it(`${protocol.source}: every request and event round-trips with random arguments`, () => {
      for (const iface of protocol.interfaces) {
        for (const message of [...iface.requests, ...iface.events]) {
          fc.assert(
            fc.property(fc.integer({ min: 1, max: U32_MAX }), arbitraryArgs(message), (objectId, args) =>
              roundTrip(objectId, message, args),
            ),
            { seed: 51, numRuns: 25 },
          );
        }
      }
    });
  }
});

describe('the wire format', () => {
  it('matches hand-computed bytes for get_registry, bind and an error event', () => {
    const getRegistry = encodeMessage(1, messageNamed(wl_display.requests, 'get_registry'), { registry: 2 });
    expect(getRegistry.data.toString('hex')).toBe('01000000' + '01000c00' + '02000000');
    const bind = encodeMessage(2, messageNamed(wl_registry.requests, 'bind'), {
      name: 10,
      id: { interface: 'wl_shm', version: 1, id: 3 },
    });
    // name, then "wl_shm\0" as length 7 padded to 8, version, id: 8 + 4 + 4 + 8 + 4 + 4 = 32 bytes.
    expect(bind.data.toString('hex')).toBe(
      ['02000000', '00002000', '0a000000', '07000000', '776c5f73686d0000', '01000000', '03000000'].join(''),
    );
    const error = encodeMessage(1, messageNamed(wl_display.events, 'error'), {
      object_id: 2,
      code: 0,
      message: 'abc',
    });
    expect(error.data.toString('hex')).toBe('01000000000018000200000000000000' + '04000000' + '61626300');
  });

  it('encodes a null string as length 0 and a fixed as 24.8', () => {
    const message: MessageSpec = {
      name: 'm',
      opcode: 3,
      since: 1,
      args: [
        { name: 's', type: 'string', nullable: true },
        { name: 'f', type: 'fixed' },
      ],
    };
    const { data } = encodeMessage(7, message, { s: null, f: -1.5 });
    expect(data.toString('hex')).toBe('07000000030010000000000080feffff');
    expect(decodeMessage(message, data, 0, data.length, [])).toEqual({ s: null, f: -1.5 });
  });

  it('builds a message of exactly 4096 bytes and refuses one byte of payload more', () => {
    const offer = messageNamed(
      protocols[0]?.interfaces.find((iface) => iface.name === 'wl_data_source')?.requests ?? [],
      'offer',
    );
    // 8 header + 4 length + 4084 bytes ("x" * 4083 + NUL).
    expect(encodeMessage(5, offer, { mime_type: 'x'.repeat(4083) }).data.length).toBe(MAX_MESSAGE_SIZE);
    expect(() => encodeMessage(5, offer, { mime_type: 'x'.repeat(4084) })).toThrow(/at most 4096/);
  });

  it('reads headers and rejects sizes libwayland cannot frame', () => {
    const header = (size: number) => Buffer.from([1, 0, 0, 0, 2, 0, size & 0xff, size >> 8]);
    expect(readHeader(header(8), 0)).toEqual({ objectId: 1, opcode: 2, size: 8 });
    for (const size of [0, 4, 7, 10, 4100, 65532])
      expect(() => readHeader(header(size), 0)).toThrow(WaylandWireError);
  });

  const sync = messageNamed(wl_display.requests, 'sync');
  const errorEvent = messageNamed(wl_display.events, 'error');
  const decodeError = (data: Buffer, message: MessageSpec = errorEvent) => {
    try {
      decodeArgs(message, data, 0, data.length, []);
    } catch (error) {
      return (error as WaylandWireError).code;
    }
    return 'accepted';
  };

  it('rejects truncated, padded-away, unterminated, null and overlong arguments', () => {
    const good = encodeMessage(1, errorEvent, { object_id: 2, code: 1, message: 'abcdef' }).data;
    expect(decodeError(good)).toBe('accepted');
    expect(decodeError(good.subarray(0, 12))).toBe('TRUNCATED');
    expect(decodeError(good.subarray(0, good.length - 4))).toBe('TRUNCATED');
    const unterminated = Buffer.from(good);
    unterminated[good.length - 1] = 0x41; // "abcdef\0" + pad: the length says 7, byte 7 must be NUL
    unterminated.writeUInt32LE(8, 16);
    expect(decodeError(unterminated)).toBe('STRING_NOT_TERMINATED');
    const nullString = Buffer.from(good.subarray(0, 20));
    nullString.writeUInt32LE(0, 16);
    expect(decodeError(nullString)).toBe('NULL_NOT_ALLOWED');
    const nullNewId = encodeMessage(1, sync, { callback: 9 }).data;
    nullNewId.writeUInt32LE(0, 8);
    expect(decodeError(nullNewId, sync)).toBe('NULL_NOT_ALLOWED');
    const trailing = Buffer.concat([encodeMessage(1, sync, { callback: 9 }).data, Buffer.alloc(4)]);
    expect(decodeError(trailing, sync)).toBe('TRAILING_BYTES');
  });

  it('gives fd arguments the next queued fds in order, and refuses a message without its fds', () => {
    const createPool = messageNamed(wl_shm.requests, 'create_pool');
    const queue = new FdQueue();
    queue.push([40, 41]);
    const { data } = encodeMessage(3, createPool, { id: 4, fd: 99, size: 4096 });
    expect(decodeMessage(createPool, data, 0, data.length, queue.take(1))).toEqual({
      id: 4,
      fd: 40,
      size: 4096,
    });
    expect(decodeMessage(createPool, data, 0, data.length, queue.take(1)).fd).toBe(41);
    expect(() => queue.take(1)).toThrow(/1 fds wanted, 0 queued/);
    expect(decodeError(data, createPool)).toBe('MISSING_FD');
  });
});
