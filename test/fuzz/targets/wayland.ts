// Fuzz targets of the Wayland codec: every generated message decoder on encoded-then-mutated bytes, and the wire
// framing with fd counts; and of the fd queue (native/fds.ts) the Wayland and D-Bus filters take fds from.
import fc from 'fast-check';
import { FdQueue } from '../../../native/fds.js';
import { protocols } from '../../../protocols/wayland/index.js';
import type { MessageSpec } from '../../../protocols/wayland/spec.js';
import {
  type ArgValue,
  decodeArgs,
  encodeMessage,
  fdCount,
  HEADER_SIZE,
  type MessageArgs,
  readHeader,
  WaylandWireError,
} from '../../../protocols/wayland/wire.js';
import { applyMutations, mutationArb } from '../../protocols/dbus/arbitraries.js';
import { arbitraryArgs } from '../../protocols/wayland/arbitraries.js';
import { disagree, isRefusal, latin1, refusedOr } from '../oracle.js';
import type { FuzzTarget } from '../target.js';

/** Every request and event of every generated protocol, with where it comes from. */
const MESSAGES: { label: string; spec: MessageSpec }[] = protocols.flatMap((protocol) =>
  protocol.interfaces.flatMap((iface) => [
    ...iface.requests.map((spec) => ({ label: `${iface.name}.${spec.name}`, spec })),
    ...iface.events.map((spec) => ({ label: `${iface.name}.${spec.name}!`, spec })),
  ]),
);

type WireInput = {
  message: number;
  bytes: string;
  /** Fds the message is given: its fd arguments' count, plus or minus. */
  fds: number;
};

function wireInputArb(): fc.Arbitrary<WireInput> {
  return fc.nat({ max: MESSAGES.length - 1 }).chain((message) => {
    const { spec } = MESSAGES[message] as (typeof MESSAGES)[number];
    const encoded = fc
      .tuple(fc.integer({ min: 1, max: 0xffffffff }), arbitraryArgs(spec))
      .map(([id, args]) => {
        try {
          return encodeMessage(id, spec, args as MessageArgs<MessageSpec>).data;
        } catch (error) {
          // Strings and arrays over 4096 bytes in all: the largest message there is, then.
          if (error instanceof WaylandWireError && error.code === 'TOO_BIG') return Buffer.alloc(HEADER_SIZE);
          throw error;
        }
      });
    return fc.record({
      message: fc.constant(message),
      bytes: fc
        .oneof(
          encoded,
          fc
            .tuple(encoded, fc.array(mutationArb, { minLength: 1, maxLength: 3 }))
            .map(([data, m]) => applyMutations(data, m)),
        )
        .map((data) => data.toString('latin1')),
      fds: fc.constantFrom(0, 1, 2).map((extra) => Math.max(0, fdCount(spec) + extra - 1)),
    });
  });
}

/** Values compared as JSON (Buffers as their bytes). */
const comparable = (values: ArgValue[]) =>
  JSON.stringify(values, (_, value) =>
    value?.type === 'Buffer' ? Buffer.from(value.data).toString('hex') : value,
  );

export const wireTarget: FuzzTarget<WireInput> = {
  name: 'wayland-wire',
  codec: 'wayland',
  description:
    'every generated decoder on encoded and mutated messages: only WaylandWireError, decode-encode-decode stable',
  sources: ['protocols/wayland/wire.ts'],
  ciRuns: 10000,
  minBehaviours: 8,
  arbitrary: wireInputArb,
  check({ message, bytes: text, fds }) {
    const { label, spec } = MESSAGES[message % MESSAGES.length] as (typeof MESSAGES)[number];
    const bytes = latin1(text);
    if (bytes.length < HEADER_SIZE) return 'short';
    const header = refusedOr(WaylandWireError, () => readHeader(bytes, 0));
    if (isRefusal(header)) return `refused:${header.refused}`;
    // The framer hands decoders whole messages only.
    if (header.size > bytes.length) return 'incomplete';
    const given = Array.from({ length: fds }, (_, i) => 100 + i);
    const values = refusedOr(WaylandWireError, () => decodeArgs(spec, bytes, 0, header.size, given));
    if (isRefusal(values)) return `refused:${values.refused}`;
    // What decoded encodes again (canonically: zero padding, the string as UTF-8) to what decodes the same.
    const args = Object.fromEntries(spec.args.map((arg, i) => [arg.name, values[i] as ArgValue]));
    const again = refusedOr(WaylandWireError, () =>
      encodeMessage(header.objectId, spec, args as MessageArgs<MessageSpec>),
    );
    if (isRefusal(again)) {
      // A decoded string may hold NUL or lone surrogates from invalid UTF-8; those cannot be encoded back.
      if (again.refused === 'BAD_VALUE' || again.refused === 'TOO_BIG')
        return `accepted:not-reencodable:${again.refused}`;
      disagree(`${label}: a decoded message does not encode again`, { bytes: bytes.toString('hex'), again });
    }
    const redecoded = decodeArgs(spec, again.data, 0, again.data.length, again.fds);
    if (comparable(redecoded) !== comparable(values))
      disagree(`${label}: decode(encode(decode(bytes))) differs from decode(bytes)`, {
        bytes: bytes.toString('hex'),
      });
    return fdCount(spec) > 0 ? 'accepted:with-fds' : 'accepted';
  },
};

/** The fds taken, or null when the queue refused (RangeError, taking none). */
function takeOrRefuse(queue: FdQueue, count: number): number[] | null {
  try {
    return queue.take(count);
  } catch (error) {
    if (error instanceof RangeError) return null;
    throw error;
  }
}

export const fdQueueTarget: FuzzTarget<{ ops: [number, number][] }> = {
  name: 'fd-queue',
  codec: 'native',
  description: 'the fd queue: fds leave in arrival order, a take of more than queued takes none',
  sources: ['native/fds.ts'],
  ciRuns: 10000,
  minBehaviours: 2,
  arbitrary() {
    return fc.record({
      ops: fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.nat({ max: 40 })), { maxLength: 30 }),
    });
  },
  check({ ops }) {
    const queue = new FdQueue();
    const model: number[] = [];
    let next = 0;
    let refusals = 0;
    for (const [kind, count] of ops) {
      if (kind === 0) {
        const fds = Array.from({ length: count }, () => next++);
        queue.push(fds);
        model.push(...fds);
      } else if (kind === 1) {
        const taken = takeOrRefuse(queue, count);
        if (taken === null) {
          refusals++;
          if (count <= model.length) disagree('take refused with enough fds queued', { ops });
        } else if (JSON.stringify(taken) !== JSON.stringify(model.splice(0, count)))
          disagree('take out of order', { ops });
      } else if (JSON.stringify(queue.take(queue.length)) !== JSON.stringify(model.splice(0)))
        disagree('drain out of order', { ops });
      if (queue.length !== model.length) disagree('queue length differs from the model', { ops });
    }
    return refusals > 0 ? 'with-refusals' : 'all-taken';
  },
};
