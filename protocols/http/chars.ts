// Byte classes of RFC 9110 / 9112 as 256-entry tables, so validation is one lookup per byte.

function table(accepts: (byte: number) => boolean): Uint8Array {
  const classes = new Uint8Array(256);
  for (let byte = 0; byte < 256; byte++) classes[byte] = accepts(byte) ? 1 : 0;
  return classes;
}

const isAlphaNum = (byte: number): boolean =>
  (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a);
const isVisible = (byte: number): boolean => byte >= 0x21 && byte <= 0x7e;

/** tchar: the characters of methods, field names, codings and chunk-extension names. */
export const TOKEN = table(
  (byte) => isAlphaNum(byte) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(byte)),
);

/** field-vchar, SP and HTAB: a field value or a reason phrase (obs-text allowed, every other CTL refused). */
export const FIELD_TEXT = table((byte) => byte === 0x09 || byte === 0x20 || isVisible(byte) || byte >= 0x80);

/** Request-target characters: those of RFC 3986 but "#" (no fragment), so no CTL, space, obs-text, "<>\^`{|}. */
export const TARGET = table(
  (byte) => isAlphaNum(byte) || "-._~:/?[]@!$&'()*+,;=%".includes(String.fromCharCode(byte)),
);

/** qdtext (RFC 9110 §5.6.4); a quoted-pair may escape any FIELD_TEXT byte. */
export const QDTEXT = table(
  (byte) =>
    byte === 0x09 ||
    byte === 0x20 ||
    byte === 0x21 ||
    (byte >= 0x23 && byte <= 0x7e && byte !== 0x5c) ||
    byte >= 0x80,
);

/** Hex digit values; -1 for any other byte. */
export const HEX_VALUE = Int8Array.from({ length: 256 }, (_, byte) => {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  return -1;
});

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const HTAB = 0x09;
export const COLON = 0x3a;

/** The offset of the first byte of buf[start, end) outside the class, or -1 if there is none. */
export function firstOutside(classes: Uint8Array, buf: Buffer, start: number, end: number): number {
  for (let i = start; i < end; i++) if (classes[buf[i] as number] === 0) return i;
  return -1;
}

/**
 * The offset of the first `byte` in buf[start, end), or -1. A loop, not `buf.indexOf`: the parts of a start line
 * are short, and a call into the runtime for each cost several times what it searched.
 */
export function indexOfByte(buf: Buffer, byte: number, start: number, end: number): number {
  for (let i = start; i < end; i++) if (buf[i] === byte) return i;
  return -1;
}

/**
 * Whether text[start, end) (a token: a field name or option) equals a lowercase name, ignoring case, without
 * making a string. Setting bit 0x20 lowercases ASCII letters; of the other token characters only CR would map
 * onto '-', and no token has CR.
 */
export function equalsLowercase(text: string, start: number, end: number, lowercase: string): boolean {
  if (end - start !== lowercase.length) return false;
  for (let i = 0; i < lowercase.length; i++)
    if ((text.charCodeAt(start + i) | 0x20) !== lowercase.charCodeAt(i)) return false;
  return true;
}

/** Whether a string (read as latin1) is a non-empty token. */
export function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) if (TOKEN[text.charCodeAt(i)] !== 1) return false;
  return true;
}

/**
 * Strips OWS (SP and HTAB only: String.trim would also eat obs-text such as 0xA0). A loop, not a regular expression:
 * `/[\t ]+$/` is quadratic on a long run of whitespace that does not end the string.
 */
export function trimWhitespace(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text[start] === ' ' || text[start] === '\t')) start++;
  while (end > start && (text[end - 1] === ' ' || text[end - 1] === '\t')) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}
