// SASL commands of the D-Bus authentication protocol: their types, parsing one line, and serializing.
//
// Parsing is exact: a line that does not match a command's grammar below is an UNKNOWN command holding the
// line as-is, so serialize(parse(line)) reproduces every line byte for byte.
//   token   = 1* printable ASCII except space (0x21-0x7e)
//   AUTH [token [token]]   DATA [token]   ERROR [text]   (text: 0* of 0x20-0x7e)
//   BEGIN   CANCEL   NEGOTIATE_UNIX_FD   AGREE_UNIX_FD   OK token   REJECTED *(" " token)
import { DBusProtocolError } from './errors.js';

/** A line, "\r\n" included, is at most 16 KiB. */
export const MAX_SASL_LINE_LENGTH = 16 * 1024;

export interface SaslUnknown {
  readonly command: 'UNKNOWN';
  /** The line without "\r\n", one char per byte (latin1). */
  readonly line: string;
}
export interface SaslData {
  readonly command: 'DATA';
  /** Hex as sent; absent for a bare `DATA`. */
  readonly data?: string;
}
export interface SaslError {
  readonly command: 'ERROR';
  readonly message?: string;
}

/** What a client sends to the server. */
export type SaslClientCommand =
  | {
      readonly command: 'AUTH';
      readonly mechanism?: string;
      /** Hex as sent (EXTERNAL: the uid as decimal ASCII, see uidFromHex). */
      readonly initialResponse?: string;
    }
  | SaslData
  | { readonly command: 'BEGIN' }
  | { readonly command: 'CANCEL' }
  | { readonly command: 'NEGOTIATE_UNIX_FD' }
  | SaslError
  | SaslUnknown;

/** What a server sends to the client. */
export type SaslServerCommand =
  | { readonly command: 'REJECTED'; readonly mechanisms: readonly string[] }
  | { readonly command: 'OK'; readonly guid: string }
  | SaslData
  | SaslError
  | { readonly command: 'AGREE_UNIX_FD' }
  | SaslUnknown;

export type SaslCommand = SaslClientCommand | SaslServerCommand;

const TOKEN = /^[\x21-\x7e]+$/;
const TEXT = /^[\x20-\x7e]*$/;

/** Splits "WORD rest" into tokens; undefined when any of them is not a token (empty, or odd bytes). */
function tokens(line: string): string[] | undefined {
  const words = line.split(' ');
  return words.every((word) => TOKEN.test(word)) ? words : undefined;
}

function unknown(line: string): SaslUnknown {
  return { command: 'UNKNOWN', line };
}

/** Parses the commands both sides share (DATA and ERROR); undefined for any other line. */
function parseShared(line: string, words: string[] | undefined): SaslData | SaslError | undefined {
  if (line === 'ERROR') return { command: 'ERROR' };
  if (line.startsWith('ERROR ')) {
    const message = line.slice('ERROR '.length);
    return TEXT.test(message) ? { command: 'ERROR', message } : undefined;
  }
  if (words?.[0] === 'DATA' && words.length <= 2) {
    return words[1] === undefined ? { command: 'DATA' } : { command: 'DATA', data: words[1] };
  }
  return undefined;
}

/** Parses one line (without "\r\n") sent by a client. */
export function parseSaslClientLine(line: string): SaslClientCommand {
  const words = tokens(line);
  const shared = parseShared(line, words);
  if (shared) return shared;
  if (words === undefined) return unknown(line);
  const [command, first, second] = words;
  switch (command) {
    case 'AUTH':
      if (words.length === 1) return { command };
      if (words.length === 2) return { command, mechanism: first };
      if (words.length === 3) return { command, mechanism: first, initialResponse: second };
      return unknown(line);
    case 'BEGIN':
    case 'CANCEL':
    case 'NEGOTIATE_UNIX_FD':
      return words.length === 1 ? { command } : unknown(line);
    default:
      return unknown(line);
  }
}

/** Parses one line (without "\r\n") sent by a server. */
export function parseSaslServerLine(line: string): SaslServerCommand {
  const words = tokens(line);
  const shared = parseShared(line, words);
  if (shared) return shared;
  if (words === undefined) return unknown(line);
  const [command, first] = words;
  switch (command) {
    case 'REJECTED':
      return { command, mechanisms: words.slice(1) };
    case 'OK':
      return words.length === 2 && first !== undefined ? { command, guid: first } : unknown(line);
    case 'AGREE_UNIX_FD':
      return words.length === 1 ? { command } : unknown(line);
    default:
      return unknown(line);
  }
}

function invalid(what: string, value: string): never {
  throw new DBusProtocolError('BAD_VALUE', `SASL ${what} ${JSON.stringify(value.slice(0, 64))} is not valid`);
}

function token(what: string, value: string): string {
  return TOKEN.test(value) ? value : invalid(what, value);
}

function lineOf(command: SaslCommand): string {
  switch (command.command) {
    case 'AUTH': {
      const words = ['AUTH'];
      if (command.mechanism !== undefined) words.push(token('mechanism', command.mechanism));
      if (command.initialResponse !== undefined) {
        if (command.mechanism === undefined)
          invalid('initial response without mechanism', command.initialResponse);
        words.push(token('initial response', command.initialResponse));
      }
      return words.join(' ');
    }
    case 'DATA':
      return command.data === undefined ? 'DATA' : `DATA ${token('data', command.data)}`;
    case 'ERROR':
      if (command.message === undefined) return 'ERROR';
      return TEXT.test(command.message) ? `ERROR ${command.message}` : invalid('error text', command.message);
    case 'REJECTED':
      return ['REJECTED', ...command.mechanisms.map((mechanism) => token('mechanism', mechanism))].join(' ');
    case 'OK':
      return `OK ${token('guid', command.guid)}`;
    case 'UNKNOWN':
      // Any bytes, as long as they hold no "\r\n" and so stay one line.
      return /\r\n|[\u0100-\uffff]/.test(command.line) ? invalid('line', command.line) : command.line;
    default:
      return command.command;
  }
}

/** Serializes a command as one line with its "\r\n". Throws DBusProtocolError for what cannot be one line. */
export function serializeSaslCommand(command: SaslCommand): Buffer {
  const line = Buffer.from(`${lineOf(command)}\r\n`, 'latin1');
  if (line.length > MAX_SASL_LINE_LENGTH) {
    throw new DBusProtocolError(
      'SASL_LINE_TOO_LONG',
      `SASL line of ${line.length} bytes exceeds ${MAX_SASL_LINE_LENGTH}`,
    );
  }
  return line;
}

/** The byte a client sends before its first command (it once carried credentials). */
export const SASL_NUL = Buffer.from([0]);
