import type { HttpParseError } from './errors.js';

/** One field line, as received: the name keeps its case, the value has no surrounding whitespace. */
export interface HttpHeader {
  name: string;
  value: string;
}

export type HttpVersion = '1.0' | '1.1';

/** How the body after a head is delimited (RFC 9112 §6.3). */
export type BodyFraming =
  | { kind: 'none' }
  | { kind: 'length'; length: number }
  | { kind: 'chunked' }
  /** The body runs until the connection closes (responses only). */
  | { kind: 'close' }
  /** After this head the connection carries another protocol (101, or 2xx to CONNECT). */
  | { kind: 'tunnel' };

export interface RequestHead {
  method: string;
  target: string;
  version: HttpVersion;
  headers: HttpHeader[];
  framing: BodyFraming;
  keepAlive: boolean;
  /** The `Upgrade` value when the client asks to switch protocols (HTTP/1.1, `Connection: upgrade`), else null. */
  upgrade: string | null;
  expectContinue: boolean;
}

/** What the response parser must know of the request a response answers. */
export type AnsweredRequest = Pick<RequestHead, 'method' | 'upgrade'>;

export interface ResponseHead {
  version: HttpVersion;
  status: number;
  reason: string;
  headers: HttpHeader[];
  framing: BodyFraming;
  keepAlive: boolean;
  /** A 1xx other than 101: the final response to the same request follows. */
  interim: boolean;
  /** The request this response answers, as given to `ResponseParser.expect`. */
  request: AnsweredRequest;
}

/** Size limits; a message past any of them is refused. */
export interface HttpLimits {
  /** Request line, status line or chunk-size line, without its CRLF. */
  maxLineBytes: number;
  /** All field lines of a header or trailer section, CRLFs included. */
  maxHeaderBytes: number;
  /** Field lines in a header or trailer section. */
  maxHeaders: number;
}

export const DEFAULT_LIMITS: Readonly<HttpLimits> = {
  maxLineBytes: 8 * 1024,
  maxHeaderBytes: 64 * 1024,
  maxHeaders: 100,
};

/**
 * What a parser makes of the bytes pushed into it, in order. Body data are slices of the pushed chunks.
 * `error` is always the last event; the parser then stays failed and returns no more events.
 */
export type HttpEvent<Head> =
  | { kind: 'head'; head: Head }
  | { kind: 'body'; data: Buffer }
  | { kind: 'end'; trailers: HttpHeader[] }
  | { kind: 'opaque'; data: Buffer }
  | { kind: 'error'; error: HttpParseError };

export type RequestEvent = HttpEvent<RequestHead>;
export type ResponseEvent = HttpEvent<ResponseHead>;
