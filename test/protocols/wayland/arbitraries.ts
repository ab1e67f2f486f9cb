// fast-check generators of Wayland message arguments, shared by the codec tests and the fuzz targets.
import fc from 'fast-check';
import type { ArgSpec, MessageSpec } from '../../../protocols/wayland/spec.js';
import type { ArgValue } from '../../../protocols/wayland/wire.js';

const U32_MAX = 0xffffffff;
const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });
const uint32 = fc.integer({ min: 0, max: U32_MAX });
const text = fc.string({ unit: 'grapheme', maxLength: 24 });

export function arbitraryArg(arg: ArgSpec): fc.Arbitrary<ArgValue> {
  const id = fc.integer({ min: arg.nullable ? 0 : 1, max: U32_MAX });
  switch (arg.type) {
    case 'int':
      return int32;
    case 'uint':
      return uint32;
    case 'fixed':
      return int32.map((raw) => raw / 256);
    case 'object':
      return id;
    case 'new_id':
      if (arg.interface !== undefined) return id;
      return fc.record({
        interface: fc.stringMatching(/^[a-z_][a-z0-9_]{0,30}$/),
        version: fc.integer({ min: 1, max: U32_MAX }),
        id: fc.integer({ min: 1, max: U32_MAX }),
      });
    case 'string':
      return arg.nullable ? fc.option(text, { nil: null }) : text;
    case 'array':
      return fc.uint8Array({ maxLength: 48 }).map((bytes) => Buffer.from(bytes));
    case 'fd':
      return fc.integer({ min: 0, max: 4095 });
  }
}

export function arbitraryArgs(message: MessageSpec): fc.Arbitrary<Record<string, ArgValue>> {
  return fc.record(Object.fromEntries(message.args.map((arg) => [arg.name, arbitraryArg(arg)])));
}
