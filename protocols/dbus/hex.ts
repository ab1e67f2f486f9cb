// Hex as SASL uses it, and the EXTERNAL mechanism's identity: a uid as decimal ASCII, hex-encoded.
import { DBusProtocolError } from './errors.js';

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const DECIMAL = /^[0-9]{1,10}$/;
const MAX_UID = 0xffffffff;

/** Lower-case hex of the bytes (a string is taken as its UTF-8 bytes). */
export function hexEncode(data: Uint8Array | string): string {
  const bytes =
    typeof data === 'string'
      ? Buffer.from(data, 'utf8')
      : Buffer.from(data.buffer, data.byteOffset, data.length);
  return bytes.toString('hex');
}

/** Bytes of an even-length hex string (either case). Throws BAD_HEX. */
export function hexDecode(hex: string): Buffer {
  if (!HEX.test(hex))
    throw new DBusProtocolError('BAD_HEX', `${JSON.stringify(hex.slice(0, 64))} is not hex`);
  return Buffer.from(hex, 'hex');
}

/** `1001` → `31303031`, the initial response of `AUTH EXTERNAL`. */
export function uidToHex(uid: number): string {
  if (!Number.isInteger(uid) || uid < 0 || uid > MAX_UID) {
    throw new DBusProtocolError('BAD_UID', `${uid} is not a uid`);
  }
  return hexEncode(String(uid));
}

/** `31303031` → `1001`. Throws BAD_HEX or BAD_UID (not 1 to 10 decimal digits, or over 2^32-1). */
export function uidFromHex(hex: string): number {
  const text = hexDecode(hex).toString('latin1');
  const uid = Number(text);
  if (!DECIMAL.test(text) || uid > MAX_UID) {
    throw new DBusProtocolError('BAD_UID', `${JSON.stringify(text.slice(0, 32))} is not a decimal uid`);
  }
  return uid;
}
