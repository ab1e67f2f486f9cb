// The one error class the D-Bus codec throws, for malformed input and for values that cannot be encoded.

export type DBusErrorCode =
  // message framing and header
  | 'BAD_ENDIANNESS'
  | 'BAD_VERSION'
  | 'BAD_MESSAGE_TYPE'
  | 'BAD_SERIAL'
  | 'MESSAGE_TOO_LARGE'
  | 'TRUNCATED'
  | 'TRAILING_BYTES'
  | 'BAD_HEADER_FIELD'
  | 'MISSING_HEADER_FIELD'
  // marshalled values
  | 'ARRAY_TOO_LARGE'
  | 'BAD_ARRAY_LENGTH'
  | 'BAD_BODY_LENGTH'
  | 'BAD_PADDING'
  | 'BAD_SIGNATURE'
  | 'NESTING_TOO_DEEP'
  | 'BAD_STRING'
  | 'BAD_OBJECT_PATH'
  | 'BAD_NAME'
  | 'BAD_BOOLEAN'
  | 'BAD_FD_INDEX'
  | 'BAD_VALUE'
  // SASL
  | 'SASL_MISSING_NUL'
  | 'SASL_LINE_TOO_LONG'
  | 'BAD_HEX'
  | 'BAD_UID';

export class DBusProtocolError extends Error {
  override readonly name = 'DBusProtocolError';

  constructor(
    readonly code: DBusErrorCode,
    message: string,
  ) {
    super(message);
  }
}
