import { FIELD_TEXT, firstOutside, HEX_VALUE, indexOfByte, SP, TARGET, TOKEN } from './chars.js';
import { HttpParseError } from './errors.js';
import { refusal } from './field-lines.js';
import type { HttpVersion } from './types.js';

const PERCENT = 0x25;

/** The method is source[start, methodEnd), the target source[methodEnd + 1, targetEnd). */
export interface RequestLine {
  methodEnd: number;
  targetEnd: number;
  version: HttpVersion;
}

export interface StatusLine {
  version: HttpVersion;
  status: number;
  /** The reason phrase is source[reasonStart, the line's end). */
  reasonStart: number;
}

/** `method SP request-target SP HTTP-version` with single spaces (RFC 9112 §3). */
export function parseRequestLine(buf: Buffer, start: number, end: number): RequestLine {
  const methodEnd = indexOfByte(buf, SP, start, end);
  if (methodEnd === -1) {
    throw refusal(
      buf,
      firstOutside(TOKEN, buf, start, end),
      'invalid-request-line',
      'a request line has no spaces',
    );
  }
  const badMethod = methodEnd === start ? start : firstOutside(TOKEN, buf, start, methodEnd);
  if (badMethod >= 0) throw refusal(buf, badMethod, 'invalid-method', 'a method is not a token');
  const targetEnd = indexOfByte(buf, SP, methodEnd + 1, end);
  if (targetEnd === -1 || targetEnd === methodEnd + 1 || indexOfByte(buf, SP, targetEnd + 1, end) !== -1) {
    const bad = firstOutside(TARGET, buf, methodEnd + 1, end);
    if (bad >= 0 && buf[bad] !== SP)
      throw refusal(buf, bad, 'invalid-target', 'a request-target has a control byte');
    throw new HttpParseError(
      'invalid-request-line',
      'a request line is not method, target and version between single spaces',
    );
  }
  const badTarget = firstOutside(TARGET, buf, methodEnd + 1, targetEnd);
  if (badTarget >= 0)
    throw refusal(buf, badTarget, 'invalid-target', 'a request-target has a byte outside the URI characters');
  if (!percentEncodingValid(buf, methodEnd + 1, targetEnd))
    throw new HttpParseError('invalid-target', 'a "%" in a request-target is not followed by two hex digits');
  return { methodEnd, targetEnd, version: parseVersion(buf, targetEnd + 1, end) };
}

/** `HTTP-version SP status-code [SP reason-phrase]` (RFC 9112 §4; a missing SP before an empty reason is tolerated). */
export function parseStatusLine(buf: Buffer, start: number, end: number): StatusLine {
  const version = parseVersion(buf, start, Math.min(start + 8, end));
  const codeStart = start + 9;
  if (buf[start + 8] !== SP || end < codeStart + 3 || (end > codeStart + 3 && buf[codeStart + 3] !== SP)) {
    throw refusal(
      buf,
      firstOutside(FIELD_TEXT, buf, start, end),
      'invalid-status-line',
      'a status line is not version, code and reason',
    );
  }
  let status = 0;
  for (let i = codeStart; i < codeStart + 3; i++) {
    const digit = (buf[i] as number) - 0x30;
    if (digit < 0 || digit > 9)
      throw new HttpParseError('invalid-status-line', 'a status code is not three digits');
    status = status * 10 + digit;
  }
  if (status < 100) throw new HttpParseError('invalid-status-line', `status ${status} is below 100`);
  const reasonStart = Math.min(codeStart + 4, end);
  const bad = firstOutside(FIELD_TEXT, buf, reasonStart, end);
  if (bad >= 0) throw refusal(buf, bad, 'invalid-status-line', 'a reason phrase has a control character');
  return { version, status, reasonStart };
}

/** Only HTTP/1.0 and HTTP/1.1 are spoken; any other well-formed version is refused as unsupported. */
function parseVersion(buf: Buffer, start: number, end: number): HttpVersion {
  const major = (buf[start + 5] as number) - 0x30;
  const minor = (buf[start + 7] as number) - 0x30;
  // "HTTP/" checked byte by byte: Buffer.compare would cost more than the rest of the request line.
  const wellFormed =
    end - start === 8 &&
    buf[start] === 0x48 &&
    buf[start + 1] === 0x54 &&
    buf[start + 2] === 0x54 &&
    buf[start + 3] === 0x50 &&
    buf[start + 4] === 0x2f &&
    major >= 0 &&
    major <= 9 &&
    buf[start + 6] === 0x2e &&
    minor >= 0 &&
    minor <= 9;
  if (!wellFormed)
    throw refusal(buf, firstOutside(FIELD_TEXT, buf, start, end), 'invalid-version', 'not an HTTP-version');
  if (major === 1 && minor === 1) return '1.1';
  if (major === 1 && minor === 0) return '1.0';
  throw new HttpParseError(
    'unsupported-version',
    `HTTP/${major}.${minor} is not supported (only 1.0 and 1.1)`,
  );
}

/**
 * Every "%" starts a pct-encoded triplet (RFC 3986 §2.1): a back end that decodes "%zz" or "%" leniently would
 * read another path than the one the mediator (and any access rule) saw.
 */
function percentEncodingValid(buf: Buffer, start: number, end: number): boolean {
  for (
    let at = indexOfByte(buf, PERCENT, start, end);
    at !== -1;
    at = indexOfByte(buf, PERCENT, at + 1, end)
  ) {
    if (at + 2 >= end || HEX_VALUE[buf[at + 1] as number] === -1 || HEX_VALUE[buf[at + 2] as number] === -1)
      return false;
  }
  return true;
}
