import { COLON, CR, equalsLowercase, FIELD_TEXT, firstOutside, HTAB, SP, TOKEN } from './chars.js';
import { type HttpErrorCode, HttpParseError } from './errors.js';
import type { HttpHeader } from './types.js';

/** Per field: where its name starts and ends and its value (OWS excluded) starts and ends, in `text`. */
const BOUNDS = 4;

/**
 * A block's lines as one latin1 string, with the field lines `first`.. (RFC 9112 §5: `name ":" OWS value OWS`,
 * nothing folded) checked on reading and kept as offsets: a name or value becomes a string only when asked for,
 * so a reader that needs a few fields pays for those only.
 */
export class FieldLines {
  private constructor(
    /** The block from its first line to the end of its last (CRLF excluded); names and values are slices of it. */
    private readonly text: string,
    /** Where `text` starts in the block's source. */
    private readonly base: number,
    private readonly bounds: number[],
  ) {}

  /**
   * Checks the field lines `first`.. of a block whose line i is `source[lines[2i], lines[2i+1])`. `controlFree`:
   * the block has no byte outside field text (`LineReader.controlFree`), so values need no check of their own.
   */
  static read(source: Buffer, lines: readonly number[], first: number, controlFree: boolean): FieldLines {
    if (lines.length === 0) return new FieldLines('', 0, []);
    const base = lines[0] as number;
    const bounds: number[] = [];
    for (let i = first * 2; i < lines.length; i += 2) {
      const start = lines[i] as number;
      const end = lines[i + 1] as number;
      const colon = checkFieldLine(source, start, end, controlFree);
      let valueStart = colon + 1;
      while (valueStart < end && isWhitespace(source[valueStart])) valueStart++;
      let valueEnd = end;
      while (valueEnd > valueStart && isWhitespace(source[valueEnd - 1])) valueEnd--;
      bounds.push(start - base, colon - base, valueStart - base, valueEnd - base);
    }
    // One string for the block: V8 makes the slices of it without copying.
    return new FieldLines(source.toString('latin1', base, lines[lines.length - 1]), base, bounds);
  }

  get count(): number {
    return this.bounds.length / BOUNDS;
  }

  /** The text of source[start, end) (within the block). */
  slice(start: number, end: number): string {
    return this.text.slice(start - this.base, end - this.base);
  }

  nameLength(field: number): number {
    const at = field * BOUNDS;
    return (this.bounds[at + 1] as number) - (this.bounds[at] as number);
  }

  /** Whether a field's name equals a lowercase name, ignoring case, without making the name. */
  nameIs(field: number, lowercase: string): boolean {
    const at = field * BOUNDS;
    return equalsLowercase(this.text, this.bounds[at] as number, this.bounds[at + 1] as number, lowercase);
  }

  name(field: number): string {
    const at = field * BOUNDS;
    return this.text.slice(this.bounds[at], this.bounds[at + 1]);
  }

  value(field: number): string {
    const at = field * BOUNDS;
    return this.text.slice(this.bounds[at + 2], this.bounds[at + 3]);
  }

  /** Every field as a name and value. */
  headers(): HttpHeader[] {
    const headers: HttpHeader[] = [];
    for (let field = 0; field < this.count; field++)
      headers.push({ name: this.name(field), value: this.value(field) });
    return headers;
  }
}

/** Parses the field lines `first`.. of a block (see `FieldLines.read`). */
export function parseFieldLines(
  source: Buffer,
  lines: readonly number[],
  first: number,
  controlFree: boolean,
): HttpHeader[] {
  return FieldLines.read(source, lines, first, controlFree).headers();
}

const isWhitespace = (byte: number | undefined): boolean => byte === SP || byte === HTAB;

/** Checks a field line; returns the offset of its colon. */
function checkFieldLine(buf: Buffer, start: number, end: number, controlFree: boolean): number {
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
  if (controlFree) return colon;
  // OWS is field text: the value with its surrounding whitespace has the same first bad byte as without.
  const bad = firstOutside(FIELD_TEXT, buf, colon + 1, end);
  if (bad >= 0) throw refusal(buf, bad, 'invalid-header-value', 'a field value has a control character');
  return colon;
}

/**
 * The error for an unexpected byte at `at` (-1: none in particular): a CR not followed by LF has its own code,
 * the rest get `code`. Pass -1 rather than a line's end offset, where its own CRLF starts.
 */
export function refusal(buf: Buffer, at: number, code: HttpErrorCode, message: string): HttpParseError {
  if (at >= 0 && buf[at] === CR) return new HttpParseError('bare-cr', 'a CR is not followed by LF');
  return new HttpParseError(code, message);
}
