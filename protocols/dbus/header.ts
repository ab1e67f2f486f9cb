// Header fields: their codes and types, and the rules a message's fields must follow (shared by both directions).
import { DBusProtocolError } from './errors.js';
import { type DBusMessage, HeaderField, MessageType } from './message.js';
import { isValidBusName, isValidErrorName, isValidInterfaceName, isValidMemberName } from './names.js';

export type HeaderFieldName =
  | 'path'
  | 'interface'
  | 'member'
  | 'errorName'
  | 'replySerial'
  | 'destination'
  | 'sender'
  | 'signature'
  | 'unixFds';

export interface HeaderFieldSpec {
  readonly code: number;
  readonly name: HeaderFieldName;
  /** The one type the field's variant must hold. */
  readonly type: 'o' | 's' | 'u' | 'g';
}

/** The known fields, in code order (the order `marshal` writes them). */
export const HEADER_FIELDS: readonly HeaderFieldSpec[] = [
  { code: HeaderField.PATH, name: 'path', type: 'o' },
  { code: HeaderField.INTERFACE, name: 'interface', type: 's' },
  { code: HeaderField.MEMBER, name: 'member', type: 's' },
  { code: HeaderField.ERROR_NAME, name: 'errorName', type: 's' },
  { code: HeaderField.REPLY_SERIAL, name: 'replySerial', type: 'u' },
  { code: HeaderField.DESTINATION, name: 'destination', type: 's' },
  { code: HeaderField.SENDER, name: 'sender', type: 's' },
  { code: HeaderField.SIGNATURE, name: 'signature', type: 'g' },
  { code: HeaderField.UNIX_FDS, name: 'unixFds', type: 'u' },
];

/** Indexed by field code; undefined for codes the specification does not define. */
export const HEADER_FIELD_BY_CODE: readonly (HeaderFieldSpec | undefined)[] = Array.from(
  { length: 256 },
  (_, code) => HEADER_FIELDS.find((field) => field.code === code),
);

const REQUIRED_FIELDS: Readonly<Record<number, readonly HeaderFieldName[]>> = {
  [MessageType.METHOD_CALL]: ['path', 'member'],
  [MessageType.METHOD_RETURN]: ['replySerial'],
  [MessageType.ERROR]: ['errorName', 'replySerial'],
  [MessageType.SIGNAL]: ['path', 'interface', 'member'],
};

type NameFields = Pick<DBusMessage, 'interface' | 'member' | 'errorName' | 'destination' | 'sender'>;

const NAME_RULES: readonly [keyof NameFields, (name: string) => boolean, string][] = [
  ['interface', isValidInterfaceName, 'interface name'],
  ['member', isValidMemberName, 'member name'],
  ['errorName', isValidErrorName, 'error name'],
  ['destination', isValidBusName, 'bus name'],
  ['sender', isValidBusName, 'bus name'],
];

/**
 * Checks the rules on header fields that their types alone do not: name syntax, a non-zero REPLY_SERIAL,
 * and the fields each message type requires. (Paths and signatures are checked as `o` and `g` values.)
 */
export function checkHeaderFields(message: Partial<DBusMessage> & Pick<DBusMessage, 'type'>): void {
  for (const [field, isValid, what] of NAME_RULES) {
    const name = message[field];
    if (name !== undefined && !isValid(name)) {
      throw new DBusProtocolError('BAD_NAME', `${field} ${JSON.stringify(name)} is not a valid ${what}`);
    }
  }
  if (message.replySerial === 0) throw new DBusProtocolError('BAD_SERIAL', 'replySerial must not be 0');
  for (const field of REQUIRED_FIELDS[message.type] ?? []) {
    if (message[field] === undefined) {
      throw new DBusProtocolError(
        'MISSING_HEADER_FIELD',
        `a message of type ${message.type} needs the ${field} header field`,
      );
    }
  }
}
