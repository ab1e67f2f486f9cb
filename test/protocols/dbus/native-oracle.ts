// dbus-native's marshaller and parser, as an independent implementation to compare the codec with.
// Its marshaller writes little-endian only; its parser reads both byte orders.
import { createRequire } from 'node:module';
import {
  type DBusMessage,
  type DBusValue,
  type DBusVariant,
  parseSignature,
  type TypeNode,
} from '../../../protocols/dbus/index.js';

interface NativeVariant {
  signature: string;
  value: unknown;
}
type NativeMessage = Record<string, unknown>;

const require = createRequire(import.meta.url);
const nativeMessage = require('dbus-native/lib/message.js') as {
  marshall(message: NativeMessage): Buffer;
  unmarshall(bytes: Buffer, options: object): NativeMessage;
};
const { Variant } = require('dbus-native/lib/values.js') as {
  Variant: new (signature: string, value: unknown) => NativeVariant;
};

const HEADER_NAMES = [
  'path',
  'interface',
  'member',
  'errorName',
  'replySerial',
  'destination',
  'sender',
] as const;

function singleType(signature: string): TypeNode {
  const [type] = parseSignature(signature);
  if (!type) throw new Error(`no type in ${signature}`);
  return type;
}

/** Our value representation to the one dbus-native's marshaller takes (variants as its Variant class). */
function toNative(type: TypeNode, value: DBusValue): unknown {
  switch (type.code) {
    case 'v': {
      const { signature, value: inner } = value as DBusVariant;
      return new Variant(signature, toNative(singleType(signature), inner));
    }
    case 'a':
      return value instanceof Uint8Array
        ? value
        : (value as DBusValue[]).map((item) => toNative(type.element, item));
    case '(':
      return type.fields.map((field, i) => toNative(field, (value as DBusValue[])[i] as DBusValue));
    case '{': {
      const [key, entryValue] = value as [DBusValue, DBusValue];
      return [toNative(type.key, key), toNative(type.value, entryValue)];
    }
    default:
      return value;
  }
}

/** dbus-native's parsed values (read with variants wrapped, dicts as pairs) back to ours. */
function fromNative(type: TypeNode, value: unknown): DBusValue {
  switch (type.code) {
    case 'v': {
      const { signature, value: inner } = value as NativeVariant;
      return { signature, value: fromNative(singleType(signature), inner) };
    }
    case 'a':
      return Buffer.isBuffer(value)
        ? value
        : (value as unknown[]).map((item) => fromNative(type.element, item));
    case '(':
      return type.fields.map((field, i) => fromNative(field, (value as unknown[])[i]));
    case '{': {
      const [key, entryValue] = value as [unknown, unknown];
      return [fromNative(type.key, key), fromNative(type.value, entryValue)];
    }
    default:
      return value as DBusValue;
  }
}

export function nativeMarshal(message: DBusMessage): Buffer {
  const types = parseSignature(message.signature);
  const native: NativeMessage = {
    type: message.type,
    flags: message.flags,
    serial: message.serial,
    signature: message.signature,
    body: types.map((type, i) => toNative(type, message.body[i] as DBusValue)),
    // dbus-native derives UNIX_FDS from the fds it is given.
    fds: Array.from({ length: message.unixFds }, () => -1),
  };
  for (const name of HEADER_NAMES) if (message[name] !== undefined) native[name] = message[name];
  return nativeMessage.marshall(native);
}

export function nativeUnmarshal(bytes: Buffer): DBusMessage {
  const native = nativeMessage.unmarshall(bytes, {
    plainValues: false,
    variants: 'wrap',
    returnBigInt: true,
  });
  const signature = (native.signature as string | undefined) ?? '';
  const body = (native.body as unknown[] | undefined) ?? [];
  const message: DBusMessage = {
    type: native.type as number,
    flags: native.flags as number,
    serial: native.serial as number,
    signature,
    unixFds: (native.unixFds as number | undefined) ?? 0,
    body: parseSignature(signature).map((type, i) => fromNative(type, body[i])),
  };
  for (const name of HEADER_NAMES)
    if (native[name] !== undefined) Object.assign(message, { [name]: native[name] });
  return message;
}
