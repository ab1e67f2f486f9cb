// Message and value types, and the protocol's constants.

/** Largest message: 128 MiB, header and body together. */
export const MAX_MESSAGE_LENGTH = 128 * 1024 * 1024;
/** Largest array payload: 64 MiB (the header-field array included). */
export const MAX_ARRAY_LENGTH = 64 * 1024 * 1024;
/** The fixed part of every message: endianness, type, flags, version, body length, serial, header-field array length. */
export const FIXED_HEADER_LENGTH = 16;
export const PROTOCOL_VERSION = 1;

export type Endianness = 'l' | 'B';
export const LITTLE_ENDIAN = 0x6c; // 'l'
export const BIG_ENDIAN = 0x42; // 'B'

export const MessageType = {
  METHOD_CALL: 1,
  METHOD_RETURN: 2,
  ERROR: 3,
  SIGNAL: 4,
} as const;

export const MessageFlag = {
  NO_REPLY_EXPECTED: 0x1,
  NO_AUTO_START: 0x2,
  ALLOW_INTERACTIVE_AUTHORIZATION: 0x4,
} as const;

export const HeaderField = {
  PATH: 1,
  INTERFACE: 2,
  MEMBER: 3,
  ERROR_NAME: 4,
  REPLY_SERIAL: 5,
  DESTINATION: 6,
  SENDER: 7,
  SIGNATURE: 8,
  UNIX_FDS: 9,
} as const;

/** A variant: a value together with the single complete type it has. */
export interface DBusVariant {
  readonly signature: string;
  readonly value: DBusValue;
}

/**
 * A JS value for a D-Bus type, chosen by the signature it is marshalled with:
 * - `y n q i u d`: number; `h`: number, an index into the message's unix fds; `x t`: bigint; `b`: boolean;
 * - `s o g`: string;
 * - `ay`: Uint8Array (decoded as a Buffer); other arrays: an array of their elements;
 * - struct `(...)`: an array of its fields; dict entry `{kv}`: a two-element array `[key, value]`
 *   (so `a{sv}` is an array of pairs, in wire order, duplicates kept);
 * - `v`: a DBusVariant.
 */
export type DBusValue = number | bigint | boolean | string | Uint8Array | DBusValue[] | DBusVariant;

export function variant(signature: string, value: DBusValue): DBusVariant {
  return { signature, value };
}

/** A decoded message. Header fields that are absent are undefined; unknown header fields are dropped. */
export interface DBusMessage {
  /** One of MessageType, or an unknown type (which receivers must ignore, not reject). */
  type: number;
  flags: number;
  serial: number;
  path?: string;
  interface?: string;
  member?: string;
  errorName?: string;
  replySerial?: number;
  destination?: string;
  sender?: string;
  /** The body's signature; '' when the SIGNATURE field is absent. */
  signature: string;
  /** How many unix fds accompany the message (the UNIX_FDS field; 0 when absent). */
  unixFds: number;
  body: DBusValue[];
}

/** What `marshal` takes: a message whose signature, body and fd count default to empty. */
export type DBusMessageInit = Omit<DBusMessage, 'signature' | 'unixFds' | 'body'> &
  Partial<Pick<DBusMessage, 'signature' | 'unixFds' | 'body'>>;
