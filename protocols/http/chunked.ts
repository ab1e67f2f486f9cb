import { FIELD_TEXT, HEX_VALUE, QDTEXT, TOKEN } from './chars.js';
import { HttpParseError } from './errors.js';
import { refusal } from './field-lines.js';
import type { HttpHeader } from './types.js';

const MAX_SIZE_DIGITS = 16;
const SEMICOLON = 0x3b;
const EQUALS = 0x3d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The size of a chunk from its line `1*HEXDIG *( ";" token [ "=" ( token / quoted-string ) ] )` (RFC 9112 §7.1).
 * Stricter than the grammar: no whitespace anywhere (the BWS other parsers disagree on), at most 16 digits.
 */
export function parseChunkSize(buf: Buffer, start: number, end: number): number {
  let size = 0;
  let at = start;
  while (at < end && (HEX_VALUE[buf[at] as number] as number) >= 0) {
    size = size * 16 + (HEX_VALUE[buf[at] as number] as number);
    at++;
  }
  if (at === start || (at < end && buf[at] !== SEMICOLON)) {
    throw refusal(buf, at < end ? at : -1, 'invalid-chunk-size', 'a chunk size is not bare hex digits');
  }
  if (at - start > MAX_SIZE_DIGITS || !Number.isSafeInteger(size)) {
    throw new HttpParseError('invalid-chunk-size', 'a chunk size overflows');
  }
  checkExtensions(buf, at, end);
  return size;
}

function checkExtensions(buf: Buffer, start: number, end: number): void {
  let at = start;
  while (at < end) {
    // buf[at] is ';' here.
    at = skipToken(buf, at + 1, end);
    if (at < end && buf[at] === EQUALS) {
      at = buf[at + 1] === QUOTE ? skipQuoted(buf, at + 1, end) : skipToken(buf, at + 1, end);
    }
    if (at < end && buf[at] !== SEMICOLON) throw badExtension(buf, at);
  }
}

function skipToken(buf: Buffer, start: number, end: number): number {
  let at = start;
  while (at < end && TOKEN[buf[at] as number] === 1) at++;
  if (at === start) throw badExtension(buf, at < end ? at : -1);
  return at;
}

/** Returns the offset after the closing quote of the quoted-string that opens at `start`. */
function skipQuoted(buf: Buffer, start: number, end: number): number {
  for (let at = start + 1; at < end; at++) {
    const byte = buf[at] as number;
    if (byte === QUOTE) return at + 1;
    if (byte === BACKSLASH && at + 1 < end && FIELD_TEXT[buf[at + 1] as number] === 1) at++;
    else if (QDTEXT[byte] !== 1) throw badExtension(buf, at);
  }
  throw badExtension(buf, -1);
}

function badExtension(buf: Buffer, at: number): HttpParseError {
  return refusal(buf, at, 'invalid-chunk-extension', 'a chunk extension is not ;name[=token|quoted-string]');
}

/**
 * Fields a trailer must not carry (RFC 9110 §6.5.1): framing, routing, connection control, request modifiers,
 * authentication and content description. A recipient that merged them into the head would be fooled.
 */
const FORBIDDEN_TRAILERS = new Set([
  'age',
  'authorization',
  'cache-control',
  'connection',
  'content-encoding',
  'content-length',
  'content-range',
  'content-type',
  'cookie',
  'date',
  'expect',
  'expires',
  'host',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-range',
  'if-unmodified-since',
  'keep-alive',
  'location',
  'max-forwards',
  'pragma',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'range',
  'retry-after',
  'set-cookie',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'vary',
  'www-authenticate',
]);

export function checkTrailers(trailers: readonly HttpHeader[]): void {
  for (const { name } of trailers) {
    if (FORBIDDEN_TRAILERS.has(name.toLowerCase())) {
      throw new HttpParseError('forbidden-trailer', `'${name}' is not allowed in a trailer section`);
    }
  }
}
