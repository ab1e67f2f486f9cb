// fast-check generators of D-Bus types, values and messages, shared by the property tests and the fuzz target.
// Types are generated as their own small trees (not through the codec's parser), so the tests do not trust
// the code under test to tell them what a signature means.
import fc from 'fast-check';
import { type DBusMessage, type DBusValue, marshal } from '../../../protocols/dbus/index.js';

export type BasicCode = 'y' | 'b' | 'n' | 'q' | 'i' | 'u' | 'x' | 't' | 'd' | 'h' | 's' | 'o' | 'g';
export type GenType =
  | { kind: 'basic'; code: BasicCode }
  | { kind: 'array'; element: GenType }
  | { kind: 'struct'; fields: GenType[] }
  | { kind: 'dict'; key: BasicCode; value: GenType }
  | { kind: 'variant' };

export interface GenOptions {
  /** How many fds messages declare; `h` appears only when > 0, with indexes below it. */
  unixFds: number;
  /** dbus-native refuses NaN and infinities; the codec itself carries any double. */
  finiteDoubles: boolean;
  /** Container nesting of generated types (variants' contents included). */
  depth: number;
}

const BASIC_CODES: BasicCode[] = ['y', 'b', 'n', 'q', 'i', 'u', 'x', 't', 'd', 'h', 's', 'o', 'g'];

export function signatureOf(type: GenType): string {
  switch (type.kind) {
    case 'basic':
      return type.code;
    case 'array':
      return `a${signatureOf(type.element)}`;
    case 'struct':
      return `(${type.fields.map(signatureOf).join('')})`;
    case 'dict':
      return `a{${type.key}${signatureOf(type.value)}}`;
    case 'variant':
      return 'v';
  }
}

function basicCodes(options: GenOptions): BasicCode[] {
  return options.unixFds > 0 ? BASIC_CODES : BASIC_CODES.filter((code) => code !== 'h');
}

export function typeArb(options: GenOptions, depth = options.depth): fc.Arbitrary<GenType> {
  const codes = basicCodes(options);
  const basic = fc.constantFrom(...codes).map((code): GenType => ({ kind: 'basic', code }));
  const leaf = fc.oneof(basic, fc.constant<GenType>({ kind: 'variant' }));
  if (depth <= 0) return basic;
  const inner = typeArb(options, depth - 1);
  return fc.oneof(
    { weight: 3, arbitrary: leaf },
    { weight: 1, arbitrary: inner.map((element): GenType => ({ kind: 'array', element })) },
    {
      weight: 1,
      arbitrary: fc
        .array(inner, { minLength: 1, maxLength: 4 })
        .map((fields): GenType => ({ kind: 'struct', fields })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(...codes), inner)
        .map(([key, value]): GenType => ({ kind: 'dict', key, value })),
    },
  );
}

const nameElement = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,7}$/);
export const objectPathArb = fc
  .array(fc.stringMatching(/^[A-Za-z0-9_]{1,6}$/), { maxLength: 4 })
  .map((elements) => `/${elements.join('/')}`);
export const interfaceNameArb = fc.array(nameElement, { minLength: 2, maxLength: 4 }).map((e) => e.join('.'));
export const memberNameArb = nameElement;
export const busNameArb = fc.oneof(
  fc
    .array(fc.stringMatching(/^[A-Za-z0-9_-]{1,5}$/), { minLength: 2, maxLength: 3 })
    .map((e) => `:${e.join('.')}`),
  fc
    .array(fc.stringMatching(/^[A-Za-z_-][A-Za-z0-9_-]{0,6}$/), { minLength: 2, maxLength: 3 })
    .map((e) => e.join('.')),
);
// Any Unicode text without NUL (lone surrogates cannot be UTF-8, so 'binary' units are whole code points).
const textArb = fc.string({ unit: 'binary', maxLength: 12 }).map((s) => s.replaceAll('\0', ''));
const signatureArb = (options: GenOptions) =>
  fc.array(typeArb(options, 2), { maxLength: 3 }).map((types) => types.map(signatureOf).join(''));

function basicValueArb(code: BasicCode, options: GenOptions): fc.Arbitrary<DBusValue> {
  switch (code) {
    case 'y':
      return fc.integer({ min: 0, max: 0xff });
    case 'b':
      return fc.boolean();
    case 'n':
      return fc.integer({ min: -0x8000, max: 0x7fff });
    case 'q':
      return fc.integer({ min: 0, max: 0xffff });
    case 'i':
      return fc.integer({ min: -0x80000000, max: 0x7fffffff });
    case 'u':
      return fc.integer({ min: 0, max: 0xffffffff });
    case 'h':
      return fc.integer({ min: 0, max: options.unixFds - 1 });
    case 'x':
      return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
    case 't':
      return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    case 'd':
      return fc.double(options.finiteDoubles ? { noNaN: true, noDefaultInfinity: true } : {});
    case 's':
      return textArb;
    case 'o':
      return objectPathArb;
    case 'g':
      return signatureArb(options);
  }
}

export function valueArb(type: GenType, options: GenOptions): fc.Arbitrary<DBusValue> {
  switch (type.kind) {
    case 'basic':
      return basicValueArb(type.code, options);
    case 'array':
      if (type.element.kind === 'basic' && type.element.code === 'y') {
        return fc.uint8Array({ maxLength: 9 }).map((bytes) => Buffer.from(bytes));
      }
      return fc.array(valueArb(type.element, options), { maxLength: 3 });
    case 'struct':
      return fc.tuple(...type.fields.map((field) => valueArb(field, options)));
    case 'dict':
      return fc.array(fc.tuple(basicValueArb(type.key, options), valueArb(type.value, options)), {
        maxLength: 3,
      });
    case 'variant':
      // A variant's contents are shallower, so generated values stay far below the depth limits.
      return typeArb(options, Math.max(0, options.depth - 1)).chain((inner) =>
        valueArb(inner, { ...options, depth: Math.max(0, options.depth - 1) }).map((value) => ({
          signature: signatureOf(inner),
          value,
        })),
      );
  }
}

/** A signature of 0-4 complete types and a body for it. */
export function bodyArb(options: GenOptions): fc.Arbitrary<{ signature: string; body: DBusValue[] }> {
  return fc
    .array(typeArb(options), { maxLength: 4 })
    .chain((types) =>
      fc
        .tuple(...types.map((type) => valueArb(type, options)))
        .map((body) => ({ signature: types.map(signatureOf).join(''), body })),
    );
}

const optional = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

/** A valid message: header fields as its type requires (plus optional ones), any body. */
export function messageArb(options: Partial<GenOptions> = {}): fc.Arbitrary<DBusMessage> {
  return fc.integer({ min: 0, max: 6 }).chain((unixFds) => {
    const resolved: GenOptions = { unixFds, finiteDoubles: false, depth: 3, ...options };
    return fc
      .record({
        type: fc.integer({ min: 1, max: 5 }),
        flags: fc.integer({ min: 0, max: 7 }),
        serial: fc.integer({ min: 1, max: 0xffffffff }),
        path: optional(objectPathArb),
        interface: optional(interfaceNameArb),
        member: optional(memberNameArb),
        errorName: optional(interfaceNameArb),
        replySerial: optional(fc.integer({ min: 1, max: 0xffffffff })),
        destination: optional(busNameArb),
        sender: optional(busNameArb),
        // Filled in below when the type requires it.
        requiredPath: objectPathArb,
        requiredInterface: interfaceNameArb,
        requiredMember: memberNameArb,
        requiredErrorName: interfaceNameArb,
        requiredReplySerial: fc.integer({ min: 1, max: 0xffffffff }),
        content: bodyArb(resolved),
      })
      .map((m) => {
        const needs = (types: number[]) => types.includes(m.type);
        const message: DBusMessage = {
          type: m.type,
          flags: m.flags,
          serial: m.serial,
          signature: m.content.signature,
          unixFds: resolved.unixFds,
          body: m.content.body,
        };
        const fields = {
          path: needs([1, 4]) ? m.requiredPath : m.path,
          interface: needs([4]) ? m.requiredInterface : m.interface,
          member: needs([1, 4]) ? m.requiredMember : m.member,
          errorName: needs([3]) ? m.requiredErrorName : m.errorName,
          replySerial: needs([2, 3]) ? m.requiredReplySerial : m.replySerial,
          destination: m.destination,
          sender: m.sender,
        };
        // Absent fields are left out entirely, as unmarshal leaves them out.
        for (const [name, value] of Object.entries(fields)) {
          if (value !== undefined) Object.assign(message, { [name]: value });
        }
        return message;
      });
  });
}

/** One change to a message's bytes; positions are taken modulo the length. */
export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; byte: number }
  | { kind: 'u32'; at: number; value: number; littleEndian: boolean }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number };

// Values that sit on the codec's boundaries: lengths, limits, bools, and what overflows them.
const INTERESTING_U32 = [
  0,
  1,
  2,
  3,
  4,
  7,
  8,
  0xff,
  0x100,
  0xffff,
  0x7fffffff,
  0x80000000,
  0xffffffff,
  2 ** 26,
  2 ** 26 + 1,
  2 ** 27,
];

// In-place changes are weighted up: they keep lengths consistent and so reach the deeper checks.
export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('flip' as const),
      at: fc.nat(),
      bit: fc.integer({ min: 0, max: 7 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      at: fc.nat(),
      byte: fc.constantFrom(0, 1, 0x2f, 0x41, 0x7f, 0x80, 0xc0, 0xff),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('u32' as const),
      at: fc.nat(),
      value: fc.oneof(fc.constantFrom(...INTERESTING_U32), fc.nat({ max: 300 })),
      littleEndian: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('delete' as const),
      at: fc.nat(),
      length: fc.integer({ min: 1, max: 8 }),
    }),
  },
);

export function applyMutations(original: Buffer, mutations: readonly Mutation[]): Buffer {
  let bytes = Buffer.from(original);
  for (const mutation of mutations) {
    const at = bytes.length === 0 ? 0 : mutation.at % bytes.length;
    switch (mutation.kind) {
      case 'flip':
        if (bytes.length > 0) bytes[at] = (bytes[at] as number) ^ (1 << mutation.bit);
        break;
      case 'set':
        if (bytes.length > 0) bytes[at] = mutation.byte;
        break;
      case 'u32': {
        const aligned = at & ~3;
        if (aligned + 4 > bytes.length) break;
        if (mutation.littleEndian) bytes.writeUInt32LE(mutation.value, aligned);
        else bytes.writeUInt32BE(mutation.value, aligned);
        break;
      }
      case 'truncate':
        bytes = bytes.subarray(0, at);
        break;
      case 'insert':
        bytes = Buffer.concat([bytes.subarray(0, at), mutation.bytes, bytes.subarray(at)]);
        break;
      case 'delete':
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + mutation.length)]);
        break;
    }
  }
  return bytes;
}

/** A valid message in either byte order, then 1-4 mutations. */
export function mutatedMessageArb(): fc.Arbitrary<Buffer> {
  return fc
    .tuple(
      messageArb(),
      fc.constantFrom<'l' | 'B'>('l', 'B'),
      fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
    )
    .map(([message, endianness, mutations]) => applyMutations(marshal(message, endianness), mutations));
}

/** Cuts `stream` into chunks at the given offsets (taken modulo its length + 1). */
export function splitAt(stream: Buffer, offsets: readonly number[]): Buffer[] {
  const points = [...new Set(offsets.map((offset) => offset % (stream.length + 1)))].sort((a, b) => a - b);
  return [...points, stream.length].map((end, i) => stream.subarray(i === 0 ? 0 : points[i - 1], end));
}
