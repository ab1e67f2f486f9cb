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
  const bodyLength = littleEndian ? bytes.readUInt32LE(offset + 4) : bytes.readUInt32BE(offset + 4);
  const serial = littleEndian ? bytes.readUInt32LE(offset + 8) : bytes.readUInt32BE(offset + 8);
  const fieldsLength = littleEndian ? bytes.readUInt32LE(offset + 12) : bytes.readUInt32BE(offset + 12);
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
