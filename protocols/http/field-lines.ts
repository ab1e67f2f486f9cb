import { COLON, CR, FIELD_TEXT, firstOutside, HTAB, SP, TOKEN } from './chars.js';
import { type HttpErrorCode, HttpParseError } from './errors.js';
import type { HttpHeader } from './types.js';

/** Parses the field lines `first`.. of a block (RFC 9112 §5): `name ":" OWS value OWS`, nothing folded. */
export function parseFieldLines(source: Buffer, lines: readonly number[], first: number): HttpHeader[] {
  const headers: HttpHeader[] = [];
  if (lines.length <= first * 2) return headers;
  // One string for the whole section: names and values are slices of it, which V8 makes without copying.
  const base = lines[first * 2] as number;
  const text = source.toString('latin1', base, lines[lines.length - 1]);
  for (let i = first * 2; i < lines.length; i += 2) {
    headers.push(parseFieldLine(source, lines[i] as number, lines[i + 1] as number, text, base));
  }
  return headers;
}

const isWhitespace = (byte: number | undefined): boolean => byte === SP || byte === HTAB;

function parseFieldLine(buf: Buffer, start: number, end: number, text: string, base: number): HttpHeader {
  if (isWhitespace(buf[start])) {
    throw new HttpParseError('obs-fold', 'a field line starts with whitespace (obsolete line folding)');
  }
  let colon = start;
  while (colon < end && TOKEN[buf[colon] as number] === 1) colon++;
  if (colon === end || buf[colon] !== COLON) {
    let next = colon;
    while (isWhitespace(buf[next])) next++;
    if (next > colon && next < end && buf[next] === COLON) {
      throw new HttpParseError('space-before-colon', 'whitespace between a field name and its colon');
    }
    throw refusal(
      buf,
      colon < end ? colon : -1,
      'invalid-header-name',
      'a field name has a byte outside token, or no colon',
    );
  }
  if (colon === start) throw new HttpParseError('invalid-header-name', 'a field name is empty');
  let valueStart = colon + 1;
  while (valueStart < end && isWhitespace(buf[valueStart])) valueStart++;
  let valueEnd = end;
  while (valueEnd > valueStart && isWhitespace(buf[valueEnd - 1])) valueEnd--;
  const bad = firstOutside(FIELD_TEXT, buf, valueStart, valueEnd);
  if (bad >= 0) throw refusal(buf, bad, 'invalid-header-value', 'a field value has a control character');
  return {
    name: text.slice(start - base, colon - base),
    value: text.slice(valueStart - base, valueEnd - base),
  };
}

/**
 * The error for an unexpected byte at `at` (-1: none in particular): a CR not followed by LF has its own code,
 * the rest get `code`. Pass -1 rather than a line's end offset, where its own CRLF starts.
 */
export function refusal(buf: Buffer, at: number, code: HttpErrorCode, message: string): HttpParseError {
  if (at >= 0 && buf[at] === CR) return new HttpParseError('bare-cr', 'a CR is not followed by LF');
  return new HttpParseError(code, message);
}
