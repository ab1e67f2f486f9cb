import type { BodyFraming, HttpHeader, RequestHead, ResponseHead } from './types.js';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_TEXT = /^[\t\x20-\x7e\x80-\xff]*$/;
/** URI characters, "%" only as a pct-encoded triplet (as the parser reads targets). */
const TARGET = /^(?:[-A-Za-z0-9._~:/?[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+$/;
const CRLF = Buffer.from('\r\n', 'latin1');

export type RequestLineParts = Pick<RequestHead, 'method' | 'target' | 'version' | 'headers'>;
export type StatusLineParts = Pick<ResponseHead, 'version' | 'status' | 'reason' | 'headers'>;

/**
 * The bytes of a request head. Only what the parser would accept again is written: a name, value or target
 * that could inject a line (CR, LF, NUL...) throws a TypeError rather than reaching the wire.
 */
export function serializeRequestHead(head: RequestLineParts): Buffer {
  check(TOKEN.test(head.method), 'method', head.method);
  checkTarget(head.target);
  return requestHeadBytes(head, head.target, head.headers, '', true);
}

/** Field lines as `serializeRequestHead` writes them (and with its checks), to append to many heads. */
export function serializeFieldLines(headers: readonly HttpHeader[]): string {
  return fieldLines(headers, true);
}

/**
 * The bytes of a request head as the request parser produced it, sent with `headers` (the head's own, or some
 * left out as by `stripFields`) and then `appended` (from `serializeFieldLines`); the same bytes as
 * `serializeRequestHead` writes for that head with those fields. What the parser produced is valid, so only a
 * target other than the parsed one is checked: per request this is the cheap path, without a regex per field.
 */
export function serializeParsedRequestHead(
  head: Pick<RequestHead, 'method' | 'target' | 'version'>,
  target: string,
  headers: readonly HttpHeader[],
  appended: string,
): Buffer {
  if (target !== head.target) checkTarget(target);
  return requestHeadBytes(head, target, headers, appended, false);
}

/** `fieldsChecked`: the fields' names and values are checked (see `fieldLines`). */
function requestHeadBytes(
  head: Pick<RequestHead, 'method' | 'version'>,
  target: string,
  headers: readonly HttpHeader[],
  appended: string,
  fieldsChecked: boolean,
): Buffer {
  return Buffer.from(
    `${head.method} ${target} HTTP/${head.version}\r\n${fieldLines(headers, fieldsChecked)}${appended}\r\n`,
    'latin1',
  );
}

function checkTarget(target: string): void {
  check(TARGET.test(target), 'request-target', target);
}

export function serializeResponseHead(head: StatusLineParts): Buffer {
  check(
    Number.isInteger(head.status) && head.status >= 100 && head.status <= 999,
    'status',
    String(head.status),
  );
  check(FIELD_TEXT.test(head.reason), 'reason phrase', head.reason);
  return Buffer.from(
    `HTTP/${head.version} ${head.status} ${head.reason}\r\n${fieldLines(head.headers, true)}\r\n`,
    'latin1',
  );
}

/** One chunk of chunked framing, without extensions, as buffers to write in order. Empty data writes nothing. */
export function serializeChunk(data: Buffer): Buffer[] {
  if (data.length === 0) return [];
  return [Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1'), data, CRLF];
}

/** The last chunk and the trailer section that close chunked framing. */
export function serializeLastChunk(trailers: readonly HttpHeader[]): Buffer {
  return Buffer.from(`0\r\n${fieldLines(trailers, true)}\r\n`, 'latin1');
}

/**
 * A parsed body event re-framed in normalized form: under Content-Length the data as they are, under chunked
 * framing clean chunks and a last chunk with the trailers (extensions dropped).
 */
export function frameBodyEvent(
  framing: BodyFraming,
  event: { kind: 'body'; data: Buffer } | { kind: 'end'; trailers: HttpHeader[] },
): Buffer[] {
  if (framing.kind === 'chunked') {
    return event.kind === 'body' ? serializeChunk(event.data) : [serializeLastChunk(event.trailers)];
  }
  return event.kind === 'body' ? [event.data] : [];
}

/** `checked`: names and values are checked (false only for fields the parser produced). */
function fieldLines(headers: readonly HttpHeader[], checked: boolean): string {
  let lines = '';
  for (const { name, value } of headers) {
    if (checked) {
      check(TOKEN.test(name), 'field name', name);
      // Surrounding whitespace would be stripped on the way back, so it is refused like any other unstable value.
      check(FIELD_TEXT.test(value) && !hasEdgeWhitespace(value), 'field value', value);
    }
    lines += `${name}: ${value}\r\n`;
  }
  return lines;
}

function hasEdgeWhitespace(value: string): boolean {
  return (
    value.length > 0 &&
    (isWhitespace(value.charCodeAt(0)) || isWhitespace(value.charCodeAt(value.length - 1)))
  );
}

const isWhitespace = (code: number): boolean => code === 0x20 || code === 0x09;

function check(valid: boolean, what: string, text: string): void {
  if (!valid) throw new TypeError(`invalid ${what} ${JSON.stringify(text)}`);
}
