import { equalsLowercase, isToken, trimWhitespace } from './chars.js';
import { HttpParseError } from './errors.js';
import type { FieldLines } from './field-lines.js';
import type { BodyFraming, HttpVersion } from './types.js';

/** What the framing and connection rules need from a header section, read in one pass. */
export interface FieldSummary {
  contentLength: number | null;
  /** Lowercase codings of the Transfer-Encoding field, or null without one. */
  transferCodings: string[] | null;
  /** The connection options that change how the connection is used. */
  close: boolean;
  keepAlive: boolean;
  upgradeOption: boolean;
  hostCount: number;
  /** Upgrade values joined as one list, or null. */
  upgrade: string | null;
  /** Lowercase Expect values joined as one list, or null. */
  expect: string | null;
}

const MAX_LENGTH_DIGITS = 16;
/**
 * Host = uri-host [ ":" port ] (RFC 9110 §7.2): an IP-literal or a reg-name (unreserved, sub-delims, pct-encoded
 * triplets), maybe empty. A value that only has the right characters (`[.][..]:0`, `a%zz`) is refused: a back end
 * could route it differently than the mediator read it.
 */
const HOST_VALUE = /^(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?$/;
const KNOWN_CODINGS = new Set(['chunked', 'gzip', 'x-gzip', 'deflate', 'compress', 'x-compress']);

/** Reads the fields that matter; strings are made for their values only. */
export function summarizeFields(fields: FieldLines): FieldSummary {
  const summary: FieldSummary = {
    contentLength: null,
    transferCodings: null,
    close: false,
    keepAlive: false,
    upgradeOption: false,
    hostCount: 0,
    upgrade: null,
    expect: null,
  };
  for (let field = 0; field < fields.count; field++) {
    // The names that matter all differ in length: one comparison per field.
    switch (fields.nameLength(field)) {
      case 14:
        if (!fields.nameIs(field, 'content-length')) break;
        if (summary.contentLength !== null) {
          throw new HttpParseError('duplicate-content-length', 'more than one Content-Length field');
        }
        summary.contentLength = parseContentLength(fields.value(field));
        break;
      case 17:
        if (!fields.nameIs(field, 'transfer-encoding')) break;
        if (summary.transferCodings !== null) {
          throw new HttpParseError('invalid-transfer-encoding', 'more than one Transfer-Encoding field');
        }
        summary.transferCodings = parseCodings(fields.value(field));
        break;
      case 10:
        if (!fields.nameIs(field, 'connection')) break;
        readConnectionOptions(fields.value(field), summary);
        break;
      case 4:
        if (!fields.nameIs(field, 'host')) break;
        summary.hostCount++;
        if (!HOST_VALUE.test(fields.value(field)))
          throw new HttpParseError('invalid-host', 'a Host value is not uri-host[:port]');
        break;
      case 7: {
        if (!fields.nameIs(field, 'upgrade')) break;
        const value = fields.value(field);
        summary.upgrade = summary.upgrade === null ? value : `${summary.upgrade}, ${value}`;
        break;
      }
      case 6: {
        if (!fields.nameIs(field, 'expect')) break;
        const value = fields.value(field).toLowerCase();
        summary.expect = summary.expect === null ? value : `${summary.expect}, ${value}`;
        break;
      }
    }
  }
  return summary;
}

function readConnectionOptions(value: string, summary: FieldSummary): void {
  // Most values hold one option: no list to split.
  if (value.includes(',')) {
    for (const option of listElements(value)) noteConnectionOption(option, summary);
    return;
  }
  const option = trimWhitespace(value);
  if (option.length > 0) noteConnectionOption(option, summary);
}

/** A Connection option (without surrounding whitespace), read into the summary. */
function noteConnectionOption(option: string, summary: FieldSummary): void {
  if (!isToken(option))
    throw new HttpParseError('invalid-connection', `connection option '${option}' is not a token`);
  // A token compares with equalsLowercase as with toLowerCase (see there).
  if (isOption(option, 'close')) summary.close = true;
  else if (isOption(option, 'keep-alive')) summary.keepAlive = true;
  else if (isOption(option, 'upgrade')) summary.upgradeOption = true;
}

/** The framing a Content-Length or Transfer-Encoding field gives, after the checks common to both directions. */
export function declaredFraming(summary: FieldSummary, version: HttpVersion): BodyFraming | null {
  const { contentLength, transferCodings } = summary;
  if (transferCodings !== null) {
    if (contentLength !== null) {
      throw new HttpParseError(
        'content-length-with-transfer-encoding',
        'both Content-Length and Transfer-Encoding',
      );
    }
    if (version === '1.0') {
      throw new HttpParseError('transfer-encoding-in-http10', 'Transfer-Encoding in an HTTP/1.0 message');
    }
    const chunkedAt = transferCodings.indexOf('chunked');
    if (chunkedAt === -1) return { kind: 'close' };
    if (chunkedAt !== transferCodings.length - 1) {
      throw new HttpParseError('invalid-transfer-encoding', 'chunked is not the final transfer coding');
    }
    return { kind: 'chunked' };
  }
  if (contentLength !== null) return { kind: 'length', length: contentLength };
  return null;
}

function parseContentLength(value: string): number {
  if (value.length === 0 || value.length > MAX_LENGTH_DIGITS) {
    throw new HttpParseError('invalid-content-length', `Content-Length '${value}' is empty or too long`);
  }
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x30 || code > 0x39) {
      throw new HttpParseError('invalid-content-length', `Content-Length '${value}' is not a decimal number`);
    }
  }
  const length = Number(value);
  if (!Number.isSafeInteger(length))
    throw new HttpParseError('invalid-content-length', 'Content-Length overflows');
  return length;
}

function parseCodings(value: string): string[] {
  const codings = value.split(',').map((element) => trimWhitespace(element).toLowerCase());
  for (const coding of codings) {
    if (!KNOWN_CODINGS.has(coding)) {
      throw new HttpParseError('invalid-transfer-encoding', `transfer coding '${coding}' is not supported`);
    }
  }
  return codings;
}

/** The non-empty elements of a comma-separated list, without their optional whitespace. */
function listElements(value: string): string[] {
  const elements: string[] = [];
  for (const element of value.split(',')) {
    const trimmed = trimWhitespace(element);
    if (trimmed.length > 0) elements.push(trimmed);
  }
  return elements;
}

const isOption = (option: string, lowercase: string): boolean =>
  equalsLowercase(option, 0, option.length, lowercase);
