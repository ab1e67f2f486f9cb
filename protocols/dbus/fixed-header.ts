// The fixed 16-byte start of every message: everything needed to know where the message ends.
import { DBusProtocolError } from './errors.js';
import {
  BIG_ENDIAN,
  FIXED_HEADER_LENGTH,
  LITTLE_ENDIAN,
  MAX_ARRAY_LENGTH,
  MAX_MESSAGE_LENGTH,
  PROTOCOL_VERSION,
} from './message.js';

export interface FixedHeader {
  readonly littleEndian: boolean;
  readonly type: number;
  readonly flags: number;
  readonly bodyLength: number;
  readonly serial: number;
  /** Length of the header-field array, which starts at offset 16. */
  readonly fieldsLength: number;
  /** Offset of the body: the header fields padded to a multiple of 8. */
  readonly bodyOffset: number;
  /** The whole message. */
  readonly length: number;
}

/**
 * The 32-bit unsigned integer at `pos` in either byte order; the caller checked the 4 bytes are there. Plain byte
 * arithmetic: Buffer's readUInt32LE/BE check bounds the caller already checked, once per call on every message.
 */
export function u32(bytes: Buffer, pos: number, littleEndian: boolean): number {
  const b0 = bytes[pos] as number;
  const b1 = bytes[pos + 1] as number;
  const b2 = bytes[pos + 2] as number;
  const b3 = bytes[pos + 3] as number;
  return littleEndian
    ? b0 + b1 * 0x100 + b2 * 0x10000 + b3 * 0x1000000
    : b3 + b2 * 0x100 + b1 * 0x10000 + b0 * 0x1000000;
}

/**
 * Reads and checks the fixed header at `offset` (the caller guarantees 16 bytes are there): byte order,
 * protocol version, header-field array and message size limits.
 */
export function readFixedHeader(bytes: Buffer, offset: number): FixedHeader {
  const order = bytes[offset];
  if (order !== LITTLE_ENDIAN && order !== BIG_ENDIAN) {
    throw new DBusProtocolError(
      'BAD_ENDIANNESS',
      `bad byte-order flag 0x${(order ?? 0).toString(16).padStart(2, '0')} at the start of a message (expected 'l' or 'B')`,
    );
  }
  const version = bytes[offset + 3];
  if (version !== PROTOCOL_VERSION) {
    throw new DBusProtocolError(
      'BAD_VERSION',
      `unsupported protocol version ${version} (expected ${PROTOCOL_VERSION})`,
    );
  }
  const littleEndian = order === LITTLE_ENDIAN;
  const bodyLength = u32(bytes, offset + 4, littleEndian);
  const serial = u32(bytes, offset + 8, littleEndian);
  const fieldsLength = u32(bytes, offset + 12, littleEndian);
  if (fieldsLength > MAX_ARRAY_LENGTH) {
    throw new DBusProtocolError(
      'ARRAY_TOO_LARGE',
      `header-field array of ${fieldsLength} bytes exceeds the ${MAX_ARRAY_LENGTH}-byte array limit`,
    );
  }
  const bodyOffset = FIXED_HEADER_LENGTH + fieldsLength + (-fieldsLength & 7);
  const length = bodyOffset + bodyLength;
  if (length > MAX_MESSAGE_LENGTH) {
    throw new DBusProtocolError(
      'MESSAGE_TOO_LARGE',
      `message of ${length} bytes exceeds the ${MAX_MESSAGE_LENGTH}-byte limit`,
    );
  }
  return {
    littleEndian,
    type: bytes[offset + 1] as number,
    flags: bytes[offset + 2] as number,
    bodyLength,
    serial,
    fieldsLength,
    bodyOffset,
    length,
  };
}
