// The D-Bus codec: SASL lines, message (un)marshalling and stream framing. Pure: bytes in, values out.
// Match rules (match-rule.ts) are not exported here: their parser pulls in the `ebnf` package, which the daemon
// loads only when a policy needs it (import match-rule.js itself, dynamically).
export { type DBusErrorCode, DBusProtocolError } from './errors.js';
export { type RoutingFields, readRoutingFields } from './field-scan.js';
export { DBusFramer, type FramedMessage } from './framer.js';
export { hexDecode, hexEncode, uidFromHex, uidToHex } from './hex.js';
export { marshal } from './marshal.js';
export {
  BIG_ENDIAN,
  type DBusMessage,
  type DBusMessageInit,
  type DBusValue,
  type DBusVariant,
  type Endianness,
  FIXED_HEADER_LENGTH,
  HeaderField,
  LITTLE_ENDIAN,
  MAX_ARRAY_LENGTH,
  MAX_MESSAGE_LENGTH,
  MessageFlag,
  MessageType,
  variant,
} from './message.js';
export {
  isValidBusName,
  isValidErrorName,
  isValidInterfaceName,
  isValidMemberName,
  isValidObjectPath,
} from './names.js';
export {
  MAX_SASL_LINE_LENGTH,
  parseSaslClientLine,
  parseSaslServerLine,
  SASL_NUL,
  type SaslClientCommand,
  type SaslCommand,
  type SaslServerCommand,
  serializeSaslCommand,
} from './sasl.js';
export { SaslClientDecoder, SaslServerDecoder } from './sasl-decoder.js';
export { isValidSignature, MAX_SIGNATURE_LENGTH, parseSignature, type TypeNode } from './signature.js';
export { unmarshal } from './unmarshal.js';
