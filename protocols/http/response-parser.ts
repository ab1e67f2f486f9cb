import { HttpParseError } from './errors.js';
import { FieldLines } from './field-lines.js';
import { declaredFraming, summarizeFields } from './fields.js';
import { MessageParser, type NextState } from './message-parser.js';
import { parseStatusLine } from './start-line.js';
import type {
  AnsweredRequest,
  BodyFraming,
  HttpHeader,
  HttpLimits,
  HttpVersion,
  ResponseHead,
} from './types.js';

/**
 * Parses the server side of an HTTP/1.1 connection. A response's framing depends on its request (HEAD has no
 * body, a 2xx to CONNECT opens a tunnel), so the caller announces each request with `expect()` in the order
 * they were sent; interim 1xx responses precede the final one for the same request.
 */
export class ResponseParser extends MessageParser<ResponseHead> {
  private readonly requests: AnsweredRequest[] = [];

  constructor(limits: Partial<HttpLimits> = {}) {
    super(limits, false);
  }

  /** Queues the request that the next final response answers. */
  expect(request: AnsweredRequest): void {
    this.requests.push(request);
  }

  /** Requests sent and not yet answered by a final response. */
  get pendingRequests(): number {
    return this.requests.length;
  }

  protected parseHead(source: Buffer, lines: readonly number[], controlFree: boolean): ResponseHead {
    const request = this.requests[0];
    if (request === undefined)
      throw new HttpParseError('unexpected-response', 'a response without a pending request');
    if (lines.length === 0)
      throw new HttpParseError('invalid-status-line', 'an empty line where a status line belongs');
    const { version, status, reasonStart } = parseStatusLine(source, lines[0] as number, lines[1] as number);
    const fieldLines = FieldLines.read(source, lines, 1, controlFree);
    const fields = summarizeFields(fieldLines);
    const declared = declaredFraming(fields, version);
    let framing: BodyFraming;
    if (status === 101) {
      if (request.upgrade === null)
        throw new HttpParseError('unexpected-switch', '101 to a request that asked for no upgrade');
      framing = { kind: 'tunnel' };
    } else if (request.method === 'CONNECT' && status >= 200 && status < 300) {
      framing = { kind: 'tunnel' };
    } else if (status < 200 || status === 204 || status === 304 || request.method === 'HEAD') {
      framing = { kind: 'none' };
    } else {
      framing = declared ?? { kind: 'close' };
    }
    const keepAlive = framing.kind !== 'close' && !fields.close && (version === '1.1' || fields.keepAlive);
    const reasonEnd = lines[1] as number;
    return new ParsedResponseHead(
      version,
      status,
      framing,
      keepAlive,
      request,
      fieldLines,
      reasonStart,
      reasonEnd,
    );
  }

  protected afterMessage(head: ResponseHead): NextState {
    if (head.interim) return 'head';
    this.requests.shift();
    if (head.framing.kind === 'tunnel') return 'opaque';
    return head.keepAlive ? 'head' : 'closed';
  }
}

/**
 * A response head whose reason phrase and fields become strings when first read: a reader that follows responses
 * only to pair them with requests never reads them. Every field line was checked all the same.
 */
class ParsedResponseHead implements ResponseHead {
  readonly interim: boolean;
  readonly #fieldLines: FieldLines;
  /** Where the reason phrase lies in the head's source. */
  readonly #reasonStart: number;
  readonly #reasonEnd: number;
  #reason: string | undefined;
  #headers: HttpHeader[] | undefined;

  constructor(
    readonly version: HttpVersion,
    readonly status: number,
    readonly framing: BodyFraming,
    readonly keepAlive: boolean,
    readonly request: AnsweredRequest,
    fieldLines: FieldLines,
    reasonStart: number,
    reasonEnd: number,
  ) {
    this.interim = status < 200 && status !== 101;
    this.#fieldLines = fieldLines;
    this.#reasonStart = reasonStart;
    this.#reasonEnd = reasonEnd;
  }

  get reason(): string {
    this.#reason ??= this.#fieldLines.slice(this.#reasonStart, this.#reasonEnd);
    return this.#reason;
  }

  get headers(): HttpHeader[] {
    this.#headers ??= this.#fieldLines.headers();
    return this.#headers;
  }

  /** All of it, as a plain head would serialize. */
  toJSON(): ResponseHead {
    const { version, status, reason, headers, framing, keepAlive, interim, request } = this;
    return { version, status, reason, headers, framing, keepAlive, interim, request };
  }
}
