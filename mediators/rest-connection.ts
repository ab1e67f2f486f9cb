// One HTTP connection of a REST link, shared by its two directions.
//
// Requests (consumer → provider) are parsed, checked against the role's access policy when it is narrowed,
// stripped of every client-sent identity field, stamped with the link's identity and re-serialized; bodies stream
// on in normalized framing. A request the policy refuses never reaches the provider: the consumer gets a 403 (400
// for a path that cannot be checked) in its turn among the answers, its body is read and dropped, and the
// connection goes on; requests after it wait until that answer is sent. What one read of the consumer brings is
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
  serializeFieldLines,
  serializeParsedRequestHead,
  stripFields,
} from '../protocols/http/index.js';
import { type Direction, type FilterPair, type FilterSink, type Relay, RelayRejection } from './relay.js';
import type { RestPolicy, RestVerdict } from './rest-policy.js';
import type { Refusal } from './types.js';

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

/** What a connection needs of its link. */
export interface RestConnectionOptions {
  /** The identity fields every request gets, in this order. */
  identity: readonly HttpHeader[];
  /** The role's access policy; null: every request goes on. */
  policy: RestPolicy | null;
  log: Logger;
  /** Reports a request the policy refused. */
  refused: (refusal: Refusal) => void;
}

type Denied = Extract<RestVerdict, { allowed: false }>;

/**
 * The answer to a request the policy refused: a short JSON body naming the rule (none for HEAD). `closes`: the
 * connection ends after it (the request asked for that, or its body may or may not follow, see `deny`).
 */
export function denialResponse(
  verdict: Denied,
  head: Pick<RequestHead, 'method' | 'version'>,
  closes: boolean,
) {
  const error =
    verdict.status === 403
      ? 'forbidden by the access policy'
      : `the request path cannot be checked: ${verdict.reason}`;
  const body = `${JSON.stringify({ error, rule: verdict.rule, request: verdict.request })}\n`;
  const connection = closes
    ? 'Connection: close\r\n'
    : head.version === '1.0'
      ? 'Connection: keep-alive\r\n'
      : '';
  const status = verdict.status === 403 ? '403 Forbidden' : '400 Bad Request';
  return Buffer.from(
    `HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${connection}\r\n` +
      (head.method === 'HEAD' ? '' : body),
    'latin1',
  );
}

/** A refused request's answer, waiting for the answers to the requests before it. */
interface PendingDenial {
  response: Buffer;
  closes: boolean;
}

export class RestConnection {
  private readonly requests = new RequestParser();
  private readonly responses = new ResponseParser(RESPONSE_LIMITS);
  private readonly relay: Relay;
  /** The identity's field lines, written after every request's own. */
  private readonly identityLines: string;
  /** The request whose body is being forwarded: its framing frames the body events. */
  private current: RequestHead | null = null;
  /** A forwarded request has not ended yet (its body is still coming). */
  private requestOpen = false;
  /** A final response has begun and not ended yet. */
  private responseOpen = false;
  /** The answer to the upgrade or CONNECT request being forwarded, when it came before that request ended. */
  private earlyDecision: SwitchDecision | null = null;
  /** An invalid request, answered once the requests before it have been. */
  private invalid: HttpParseError | null = null;
  /** The 400 has been sent. */
  private answered = false;
  /** The relay stopped reading the consumer for us (see `updateHold`). */
  private holding = false;
  /** Request events not acted on yet: those after a refused request wait until its answer is sent. */
  private queue: RequestEvent[] = [];
  /** A refused request is being read: its body events are dropped. */
  private skipping = false;
  /** That request asked for an upgrade or CONNECT: the parser holds what follows it until told it did not happen. */
  private skippingSwitch = false;
  /** The answer to a refused request, sent once the requests before it have been answered. */
  private denial: PendingDenial | null = null;
  /** The consumer half-closed while requests still waited: the provider's side ends once they went on. */
  private endDeferred = false;
  /** A refused request ended the connection: whatever the consumer still sends is dropped. */
  private closing = false;

  /** `start` runs the relay with the connection's filters. */
  constructor(
    private readonly options: RestConnectionOptions,
    start: (filters: FilterPair) => Relay,
  ) {
    this.identityLines = serializeFieldLines(options.identity);
    this.relay = start({
      toProvider: {
        push: (chunk, sink) => this.onRequestBytes(chunk, sink),
        end: () => this.onRequestEnd(),
        endsLater: () => this.endDeferred,
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
    if (this.closing) return;
    this.forwardRequests(this.requests.push(chunk.data), sink);
    this.transferRequestBody(sink);
  }

  /** A large body of a forwarded request goes on in the kernel; not while events wait, nor a refused one's. */
  private transferRequestBody(sink: FilterSink): void {
    if (this.queue.length > 0 || this.skipping || this.closing) return;
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

  /** The consumer half-closed: the provider's side ends too, once the requests still waiting went on. */
  private onRequestEnd(): void {
    // A request cut short reached the provider as a prefix of its normalized form: its parser sees the same cut.
    const [event] = this.requests.finish();
    if (event?.kind === 'error')
      this.options.log.debug('request cut short by the consumer', { code: event.error.code });
    this.endDeferred = this.queue.length > 0;
  }

  /** Takes a batch of events, all or nothing: an error anywhere refuses the whole batch (and what still waits). */
  private forwardRequests(events: RequestEvent[], sink: FilterSink): void {
    const last = events.at(-1);
    if (last?.kind === 'error') {
      this.queue = [];
      this.refuseInvalid(last.error);
      return;
    }
    if (this.queue.length === 0) this.queue = events;
    else for (const event of events) this.queue.push(event);
    this.drain(sink);
  }

  /**
   * Forwards the queued events in order until a refused request's answer has to wait for earlier answers; the
   * refused request's own body is dropped meanwhile.
   */
  private drain(sink: FilterSink): void {
    let out: Buffer[] = [];
    let heads: RequestHead[] = [];
    let current = this.current;
    let open = this.requestOpen;
    const flush = () => {
      this.current = current;
      this.requestOpen = open;
      for (const head of heads) this.responses.expect(head);
      for (const data of out) sink.forward(data);
      // New arrays, not `length = 0`: that setter is a runtime call.
      heads = [];
      out = [];
    };
    let next = 0;
    for (; next < this.queue.length && !this.closing; next++) {
      const event = this.queue[next] as RequestEvent;
      if (this.skipping) {
        if (event.kind === 'end') this.endRefused();
        continue;
      }
      if (this.denial !== null) break;
      switch (event.kind) {
        case 'head': {
          const verdict = this.options.policy?.check(event.head.method, event.head.target);
          if (verdict !== undefined && !verdict.allowed) {
            flush();
            this.deny(event.head, verdict);
            break;
          }
          current = event.head;
          open = true;
          heads.push(current);
          out.push(this.stamped(current, verdict?.target ?? current.target));
          break;
        }
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
          throw new Error('an error event in the queue');
      }
    }
    if (this.closing || next >= this.queue.length) this.queue = [];
    else this.queue.splice(0, next);
    flush();
    if (this.queue.length === 0 && this.endDeferred && !this.closing) {
      this.endDeferred = false;
      this.relay.halfClose('toProvider');
    }
    this.afterRequests(sink);
  }

  private stamped(head: RequestHead, target: string): Buffer {
    return serializeParsedRequestHead(
      head,
      target,
      stripFields(head.headers, IDENTITY_FIELDS),
      this.identityLines,
    );
  }

  /**
   * A request the policy refused: reported, its answer sent as soon as every earlier request is answered, its body
   * read and dropped. It ends the connection when it asked for that, or when it expects 100-continue and has a
   * body: the consumer may then send the body or not, and guessing wrong would read a body as the next request.
   */
  private deny(head: RequestHead, verdict: Denied): void {
    this.options.refused({
      rule: verdict.rule,
      what: verdict.reason === null ? verdict.request : `${verdict.request} (${verdict.reason})`,
    });
    const { framing } = head;
    const hasBody = framing.kind === 'chunked' || (framing.kind === 'length' && framing.length > 0);
    const closes = !head.keepAlive || (head.expectContinue && hasBody);
    this.denial = { response: denialResponse(verdict, head, closes), closes };
    this.skipping = true;
    this.skippingSwitch = head.method === 'CONNECT' || head.upgrade !== null;
    this.sendDenial(false);
  }

  /** The refused request has been read to its end. An upgrade or CONNECT it asked for does not happen. */
  private endRefused(): void {
    this.skipping = false;
    if (!this.skippingSwitch) return;
    this.skippingSwitch = false;
    const events = this.requests.resumeHttp();
    const last = events.at(-1);
    if (last?.kind === 'error') {
      this.queue = [];
      this.refuseInvalid(last.error);
    } else {
      for (const event of events) this.queue.push(event);
    }
  }

  /**
   * Sends the waiting denial once no answer to an earlier request can still come (`force`: the provider is done).
   * Returns whether it was sent.
   */
  private sendDenial(force: boolean): boolean {
    const denial = this.denial;
    if (denial === null || (!force && this.responses.pendingRequests > 0)) return false;
    this.denial = null;
    this.relay.sink('toProvider').reply(denial.response);
    if (denial.closes) {
      this.closing = true;
      this.queue = [];
      this.relay.close('toProvider');
    }
    return true;
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
   * (what the parser holds stays one read at most), not after an invalid request, not while requests wait behind
   * a refused one (at most one read of them) or a refused request will end the connection, and not while too many
   * requests wait for answers.
   */
  private updateHold(): void {
    const hold =
      this.requests.awaitingSwitch ||
      this.invalid !== null ||
      this.queue.length > 0 ||
      this.denial?.closes === true ||
      this.responses.pendingRequests >= MAX_REQUESTS_IN_FLIGHT;
    if (hold === this.holding) return;
    this.holding = hold;
    this.relay.hold('toProvider', hold);
  }

  /** An invalid request: nothing of it goes on, the consumer stops being read and gets a 400 when it can. */
  private refuseInvalid(error: HttpParseError): void {
    this.invalid = error;
    this.updateHold();
    this.settle();
  }

  /**
   * Sends the 400 and ends the connection once no answer to an earlier request can still come: all were answered,
   * or only the refused request itself is outstanding (forwarded in part, so never answered unless it already is).
   */
  private settle(): void {
    const error = this.invalid;
    // A refused request before the invalid one is answered first.
    if (error === null || this.answered || this.denial !== null || this.closing) return;
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
    // A waiting denial, and the requests behind it, go on once the answers before it are through.
    if (this.sendDenial(false)) {
      const sink = this.relay.sink('toProvider');
      this.drain(sink);
      this.transferRequestBody(sink);
    }
    this.settle();
    this.updateHold();
  }

  private onResponseEnd(): void {
    for (const event of this.responses.finish()) this.follow(event);
    // The provider is done: no answer the consumer waits for can come any more, nor to requests still waiting.
    if (this.denial !== null) {
      this.queue = [];
      this.sendDenial(true);
    }
    if (this.closing || (this.invalid === null && !this.requests.awaitingSwitch)) return;
    if (this.invalid !== null) this.settle();
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
