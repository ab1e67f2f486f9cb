// The message filter on its own: whole messages out, each with exactly the fds it declares; after every refusal the
// fds it held are closed once it is disposed of, as the relay does (the process holds as many fds afterwards as
// before).
import { describe, expect, it } from 'vitest';
import { DBusMessageFilter } from '../../mediators/dbus-messages.js';
import { type FilterSink, RelayRejection } from '../../mediators/relay.js';
import { type DBusMessageInit, type Endianness, MessageType, marshal } from '../../protocols/dbus/index.js';
import { closeAll, contentOf, fileWithContent, openFdCount } from '../../testkit/mesh.js';

function signal(serial: number, endianness: Endianness = 'l', extra: Partial<DBusMessageInit> = {}): Buffer {
  return marshal(
    {
      type: MessageType.SIGNAL,
      flags: 0,
      serial,
      path: '/a',
      interface: 'org.pvx.T',
      member: 'S',
      signature: 's',
      body: ['x'.repeat(serial)],
      ...extra,
    },
    endianness,
  );
}

function withFds(serial: number, count: number): Buffer {
  return signal(serial, 'l', {
    signature: 'h'.repeat(count),
    body: Array.from({ length: count }, (_, i) => i),
    unixFds: count,
  });
}

interface Sent {
  data: Buffer;
  fds: number[];
}

function recorder(): { sink: FilterSink; sent: Sent[] } {
  const sent: Sent[] = [];
  return {
    sent,
    sink: {
      forward: (data, fds) => sent.push({ data: Buffer.from(data), fds: fds ?? [] }),
      reply: () => {
        throw new Error('the message filter never replies');
      },
    },
  };
}

/** The reason `run` refused the stream; the filter is then disposed of, as the relay does on a refusal. */
function rejection(filter: DBusMessageFilter, run: () => void): string {
  try {
    run();
  } catch (error) {
    if (error instanceof RelayRejection) return error.message;
    throw error;
  } finally {
    filter.dispose();
  }
  throw new Error('not rejected');
}

describe('framing', () => {
  it('forwards messages that arrive together as one write, in either byte order', () => {
    const { sink, sent } = recorder();
    const stream = Buffer.concat([signal(1), signal(2, 'B'), signal(3)]);
    new DBusMessageFilter(false).push({ data: stream, fds: [] }, sink);
    expect(sent).toEqual([{ data: stream, fds: [] }]);
  });

  it('holds a message until its last byte, whatever the cut', () => {
    const stream = Buffer.concat([signal(1), signal(40), signal(7, 'B')]);
    for (let cut = 1; cut < stream.length; cut += 1) {
      const { sink, sent } = recorder();
      const filter = new DBusMessageFilter(false);
      filter.push({ data: stream.subarray(0, cut), fds: [] }, sink);
      filter.push({ data: stream.subarray(cut), fds: [] }, sink);
      expect(Buffer.concat(sent.map((s) => s.data))).toEqual(stream);
      // Every write ends on a message boundary.
      let offset = 0;
      for (const { data } of sent) {
        offset += data.length;
        expect([signal(1).length, signal(1).length + signal(40).length, stream.length]).toContain(offset);
      }
      expect(() => filter.end()).not.toThrow();
    }
  });

  it('refuses bytes that are not a message', () => {
    const { sink, sent } = recorder();
    const filter = new DBusMessageFilter(false);
    expect(rejection(filter, () => filter.push({ data: Buffer.alloc(32, 0x58), fds: [] }, sink))).toMatch(
      /^malformed message/,
    );
    expect(sent).toEqual([]);
  });

  it('refuses a stream that ends inside a message', () => {
    const { sink } = recorder();
    const filter = new DBusMessageFilter(false);
    filter.push({ data: signal(5).subarray(0, 20), fds: [] }, sink);
    expect(rejection(filter, () => filter.end())).toMatch(/ended inside a message/);
  });
});

describe('unix fds', () => {
  it('each message takes the fds it declares, in order, even fds that came before its last byte', () => {
    const before = openFdCount();
    const { sink, sent } = recorder();
    const filter = new DBusMessageFilter(true);
    const [a, b, c] = ['a', 'b', 'c'].map(fileWithContent) as [number, number, number];
    const first = withFds(1, 1);
    const second = withFds(2, 2);
    // The first message and the start of the second arrive with all three fds; the rest later.
    const stream = Buffer.concat([signal(9), first, second]);
    filter.push({ data: stream.subarray(0, stream.length - 3), fds: [a, b, c] }, sink);
    filter.push({ data: stream.subarray(stream.length - 3), fds: [] }, sink);
    expect(sent.map(({ data, fds }) => [data.length, fds.map(contentOf)])).toEqual([
      [signal(9).length, []],
      [first.length, ['a']],
      [second.length, ['b', 'c']],
    ]);
    closeAll(sent.flatMap(({ fds }) => fds));
    expect(openFdCount()).toBe(before);
  });

  it.each([
    [
      'a message declaring more fds than arrived',
      () => ({ data: withFds(1, 2), fds: [fileWithContent('x')] }),
      /declares 2 unix fds but 1 arrived/,
    ],
    [
      'fds no message declares',
      () => ({ data: signal(1), fds: [fileWithContent('x'), fileWithContent('y')] }),
      /2 unix fds arrived that no message declares/,
    ],
    [
      'fds without a message',
      () => ({ data: Buffer.alloc(0), fds: [fileWithContent('x')] }),
      /no message declares/,
    ],
  ])('refuses %s and closes them', (_what, chunk, reason) => {
    const before = openFdCount();
    const { sink, sent } = recorder();
    const filter = new DBusMessageFilter(true);
    expect(rejection(filter, () => filter.push(chunk(), sink))).toMatch(reason);
    expect(sent.flatMap(({ fds }) => fds)).toEqual([]);
    expect(openFdCount()).toBe(before);
  });

  it('refuses fds on a connection that did not negotiate them', () => {
    const before = openFdCount();
    const { sink } = recorder();
    const fd = fileWithContent('x');
    const filter = new DBusMessageFilter(false);
    expect(rejection(filter, () => filter.push({ data: withFds(1, 1), fds: [fd] }, sink))).toMatch(
      /did not negotiate/,
    );
    expect(openFdCount()).toBe(before);
  });

  it('closes fds held for a message when the stream breaks', () => {
    const before = openFdCount();
    const { sink } = recorder();
    const filter = new DBusMessageFilter(true);
    filter.push({ data: withFds(1, 1).subarray(0, 10), fds: [fileWithContent('x')] }, sink);
    expect(openFdCount()).toBe(before + 1);
    expect(rejection(filter, () => filter.end())).toMatch(/ended inside a message/);
    expect(openFdCount()).toBe(before);
  });

  it('refuses more fds than any message may carry, held for one message', () => {
    const before = openFdCount();
    const { sink } = recorder();
    const filter = new DBusMessageFilter(true);
    const message = withFds(1, 1);
    const fds = Array.from({ length: 1025 }, () => fileWithContent('x'));
    expect(rejection(filter, () => filter.push({ data: message.subarray(0, 10), fds }, sink))).toMatch(
      /more than 1024/,
    );
    expect(openFdCount()).toBe(before);
  });
});
