// One HTTP connection of a REST link, shared by its two directions.
//
// Requests (consumer → provider) are parsed, stripped of every client-sent identity field, stamped with the link's
// identity and re-serialized; bodies stream on in normalized framing. What one read of the consumer brings is
// forwarded all or nothing: an invalid request refuses the whole read, so bytes that arrive with it never reach
// the provider. Responses (provider → consumer) pass through as they came; they are parsed only to pair them with
// the requests: to learn whether an upgrade or a CONNECT switched the connection to a tunnel, and when the requests
// forwarded before an invalid one have been answered, so that the 400 cannot be taken for one of their answers.
// The rest of a large Content-Length body, in either direction, goes on inside the kernel (the relay's transfer):
// its bytes are opaque, so the mediator need not copy them in and out.

import type { Logger } from '../log/logger.js';
import type { Chunk } from '../native/fd-socket.js';
import { closeFds } from '../native/fds.js';
import {
  frameBodyEvent,
  type HttpEvent,
  type HttpHeader,
  type HttpLimits,
  type HttpParseError,
  type RequestEvent,
  type RequestHead,
  RequestParser,
  type ResponseEvent,
  ResponseParser,
  serializeRequestHead,
  stripFields,
} from '../protocols/http/index.js';
import { type Direction, type FilterPair, type FilterSink, type Relay, RelayRejection } from './relay.js';

export const CLIENT_FIELD = 'X-PV-Client';
export const ROLE_FIELD = 'X-PV-Role';
/** The fields only the mediator may set; client-sent copies (any case, `_`/`.` look-alikes) are removed. */
export const IDENTITY_FIELDS: readonly string[] = [CLIENT_FIELD, ROLE_FIELD];

/** Response heads only pair responses with requests: generous limits, against a runaway provider only. */
const RESPONSE_LIMITS: HttpLimits = {
  maxLineBytes: 64 * 1024,
  maxHeaderBytes: 1024 * 1024,
  maxHeaders: 10_000,
};

/** Pipelined requests waiting for answers beyond which the consumer is not read (bounds what is remembered). */
const MAX_REQUESTS_IN_FLIGHT = 64;

/** The least of a Content-Length body still to come that goes on inside the kernel (below, a pipe costs more). */
const TRANSFER_MIN = 256 * 1024;

/** What a parser reading a Content-Length body offers for a transfer. */
interface BodyReader<Head> {
  readonly bodyRemaining: number;
  skipBody(length: number): HttpEvent<Head>[];
}

type SwitchDecision = 'tunnel' | 'http';

/** The bytes of the answer to an invalid request. */
export function badRequest(error: HttpParseError): Buffer {
  const body = `invalid request: ${error.code}\n`;
  return Buffer.from(
    'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n' +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    'latin1',
  );
}

export class RestConnection {
  private readonly requests = new RequestParser();
  private readonly responses = new ResponseParser(RESPONSE_LIMITS);
  private readonly relay: Relay;
  /** The request whose body is being forwarded: its framing frames the body events. */
  private current: RequestHead | null = null;
  /** A forwarded request has not ended yet (its body is still coming). */
  private requestOpen = false;
  /** A final response has begun and not ended yet. */
  private responseOpen = false;
  /** The answer to the upgrade or CONNECT request being forwarded, when it came before that request ended. */
  private earlyDecision: SwitchDecision | null = null;
  /** An invalid request, answered once the requests before it have been. */
  private refused: HttpParseError | null = null;
  /** The 400 has been sent. */
  private answered = false;
  /** The relay stopped reading the consumer for us (see `updateHold`). */
  private holding = false;

  /** `start` runs the relay with the connection's filters. */
  constructor(
    private readonly identity: readonly HttpHeader[],
    private readonly log: Logger,
    start: (filters: FilterPair) => Relay,
  ) {
    this.relay = start({
      toProvider: {
        push: (chunk, sink) => this.onRequestBytes(chunk, sink),
        end: () => this.onRequestEnd(),
        // A head, chunk-size line or trailer section begun and not finished; bodies may pause at will.
        partialMessage: () => this.requests.partialBlock,
      },
      toConsumer: {
        push: (chunk, sink) => this.onResponseBytes(chunk, sink),
        end: () => this.onResponseEnd(),
        partialMessage: () => this.responses.partialBlock,
      },
    });
  }

  private onRequestBytes(chunk: Chunk, sink: FilterSink): void {
    closeFds(chunk.fds); // REST links carry no fds: the bytes they came with go on
    this.forwardRequests(this.requests.push(chunk.data), sink);
    this.transferBody('toProvider', this.requests, (events) => this.forwardRequests(events, sink));
  }

  /** The rest of a large body goes on inside the kernel; the parser skips it once it is through. */
  private transferBody<Head>(
    direction: Direction,
    parser: BodyReader<Head>,
    resume: (events: HttpEvent<Head>[]) => void,
  ): void {
    const length = parser.bodyRemaining;
    if (length >= TRANSFER_MIN)
      this.relay.transfer(direction, length, (moved) => resume(parser.skipBody(moved)));
  }

  private onRequestEnd(): void {
    // A request cut short reached the provider as a prefix of its normalized form: its parser sees the same cut.
    const [event] = this.requests.finish();
    if (event?.kind === 'error')
      this.log.debug('request cut short by the consumer', { code: event.error.code });
  }

  /** Forwards what the events describe, all or nothing: an error anywhere refuses the whole batch. */
  private forwardRequests(events: RequestEvent[], sink: FilterSink): void {
    const out: Buffer[] = [];
    const heads: RequestHead[] = [];
    let current = this.current;
    let open = this.requestOpen;
    for (const event of events) {
      switch (event.kind) {
        case 'head':
          current = event.head;
          open = true;
          heads.push(current);
          out.push(this.stamped(current));
          break;
        case 'body':
        case 'end':
          if (current === null) throw new Error(`a request ${event.kind} without a head`);
          if (event.kind === 'body' && current.framing.kind === 'length') {
            out.push(event.data);
          } else if (event.kind === 'body') {
            out.push(...frameBodyEvent(current.framing, event));
          } else {
            const trailers = stripFields(event.trailers, IDENTITY_FIELDS);
            out.push(...frameBodyEvent(current.framing, { kind: 'end', trailers }));
            open = false;
          }
          break;
        case 'opaque':
          out.push(event.data);
          break;
        case 'error':
          this.refuse(event.error);
          return;
      }
    }
    this.current = current;
    this.requestOpen = open;
    for (const head of heads) this.responses.expect(head);
    for (const data of out) sink.forward(data);
    this.afterRequests(sink);
  }

  private stamped(head: RequestHead): Buffer {
    const headers = stripFields(head.headers, IDENTITY_FIELDS);
    headers.push(...this.identity);
    return serializeRequestHead({ method: head.method, target: head.target, version: head.version, headers });
  }

  /** An upgrade or CONNECT request ended: apply its answer if it already came, else wait for it. */
  private afterRequests(sink: FilterSink): void {
    const decision = this.earlyDecision;
    if (this.requests.awaitingSwitch && decision !== null) {
      this.earlyDecision = null;
      this.release(decision, sink);
    }
    this.updateHold();
  }

  private release(decision: SwitchDecision, sink: FilterSink): void {
    const events = decision === 'tunnel' ? this.requests.switchToTunnel() : this.requests.resumeHttp();
    this.forwardRequests(events, sink);
  }

  /**
   * The consumer is read only while its bytes can go on: not while an upgrade or CONNECT waits for its answer
   * (what the parser holds stays one read at most), not after an invalid request, and not while too many
   * requests wait for answers.
   */
  private updateHold(): void {
    const hold =
      this.requests.awaitingSwitch ||
      this.refused !== null ||
      this.responses.pendingRequests >= MAX_REQUESTS_IN_FLIGHT;
    if (hold === this.holding) return;
    this.holding = hold;
    this.relay.hold('toProvider', hold);
  }

  /** An invalid request: nothing of it goes on, the consumer stops being read and gets a 400 when it can. */
  private refuse(error: HttpParseError): void {
    this.refused = error;
    this.updateHold();
    this.settle();
  }

  /**
   * Sends the 400 and ends the connection once no answer to an earlier request can still come: all were answered,
   * or only the refused request itself is outstanding (forwarded in part, so never answered unless it already is).
   */
  private settle(): void {
    const error = this.refused;
    if (error === null || this.answered) return;
    const pending = this.responses.pendingRequests;
    if (pending === 0 || (pending === 1 && this.requestOpen && !this.responseOpen)) {
      this.answered = true;
      this.relay.sink('toProvider').reply(badRequest(error));
      this.relay.reject(
        'toProvider',
        new RelayRejection(`invalid request (${error.code}): ${error.message}`),
      );
    }
  }

  private onResponseBytes(chunk: Chunk, sink: FilterSink): void {
    closeFds(chunk.fds);
    const events = this.responses.push(chunk.data);
    const last = events.at(-1);
    if (last?.kind === 'error') {
      throw new RelayRejection(`invalid response (${last.error.code}): ${last.error.message}`);
    }
    sink.forward(chunk.data);
    this.afterResponses(events);
    this.transferBody('toConsumer', this.responses, (skipped) => this.afterResponses(skipped));
  }

  private afterResponses(events: ResponseEvent[]): void {
    for (const event of events) this.follow(event);
    this.settle();
    this.updateHold();
  }

  private onResponseEnd(): void {
    for (const event of this.responses.finish()) this.follow(event);
    if (this.refused === null && !this.requests.awaitingSwitch) return;
    // The provider is done: no answer the consumer waits for can come any more.
    if (this.refused !== null) this.settle();
    this.relay.reject('toProvider', new RelayRejection('the provider closed before answering'));
  }

  private follow(event: ResponseEvent): void {
    if (event.kind === 'end') {
      this.responseOpen = false;
      return;
    }
    if (event.kind !== 'head' || event.head.interim) return;
    this.responseOpen = true;
    const { request, framing } = event.head;
    if (request.upgrade === null && request.method !== 'CONNECT') return;
    const decision: SwitchDecision = framing.kind === 'tunnel' ? 'tunnel' : 'http';
    if (this.requests.awaitingSwitch) this.release(decision, this.relay.sink('toProvider'));
    else this.earlyDecision = decision;
  }
}
