import { HttpParseError } from './errors.js';
import { FieldLines } from './field-lines.js';
import { declaredFraming, summarizeFields } from './fields.js';
import { MessageParser, type NextState } from './message-parser.js';
import { parseRequestLine } from './start-line.js';
import type { BodyFraming, HttpLimits, RequestEvent, RequestHead } from './types.js';

/** uri-host: an IP-literal or a reg-name / IPv4 address (no userinfo: RFC 9110 §4.2.4 makes it an error). */
const HOST = String.raw`(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)`;
const AUTHORITY_FORM = new RegExp(`^${HOST}:[0-9]{1,5}$`);
const ABSOLUTE_FORM = new RegExp(`^https?://${HOST}(?::[0-9]*)?(?:[/?]|$)`, 'i');

/**
 * Parses the client side of an HTTP/1.1 connection (RFC 9112, strictly).
 *
 * After a CONNECT or an upgrade request the meaning of the following bytes depends on the server's answer, so
 * the parser holds them (`awaitingSwitch`) until told: `switchToTunnel()` after a 2xx to CONNECT or a 101,
 * `resumeHttp()` after any other final response.
 */
export class RequestParser extends MessageParser<RequestHead> {
  constructor(limits: Partial<HttpLimits> = {}) {
    super(limits, true);
  }

  get awaitingSwitch(): boolean {
    return this.isHolding;
  }

  /** The server switched protocols: every held and later byte comes out as `opaque`. */
  switchToTunnel(): RequestEvent[] {
    return this.release(true);
  }

  /** The server declined the switch: held bytes are parsed as the next requests. */
  resumeHttp(): RequestEvent[] {
    return this.release(false);
  }

  protected parseHead(source: Buffer, lines: readonly number[], controlFree: boolean): RequestHead {
    const start = lines[0] as number;
    const { methodEnd, targetEnd, version } = parseRequestLine(source, start, lines[1] as number);
    const fieldLines = FieldLines.read(source, lines, 1, controlFree);
    const method = fieldLines.slice(start, methodEnd);
    const target = fieldLines.slice(methodEnd + 1, targetEnd);
    const headers = fieldLines.headers();
    const fields = summarizeFields(fieldLines);
    if (fields.hostCount > 1) throw new HttpParseError('duplicate-host', 'more than one Host field');
    if (fields.hostCount === 0 && version === '1.1')
      throw new HttpParseError('missing-host', 'an HTTP/1.1 request without Host');
    checkTargetForm(method, target);
    const framing: BodyFraming = declaredFraming(fields, version) ?? { kind: 'none' };
    if (framing.kind === 'close') {
      throw new HttpParseError(
        'invalid-transfer-encoding',
        'a request body must have chunked as its final coding',
      );
    }
    if (
      method === 'CONNECT' &&
      (framing.kind === 'chunked' || (framing.kind === 'length' && framing.length > 0))
    ) {
      throw new HttpParseError('invalid-connect', 'a CONNECT request with a body');
    }
    const isHttp11 = version === '1.1';
    return {
      method,
      target,
      version,
      headers,
      framing,
      keepAlive: !fields.close && (isHttp11 || fields.keepAlive),
      // An Upgrade in an HTTP/1.0 request is ignored (RFC 9110 §7.8).
      upgrade: isHttp11 && fields.upgradeOption ? fields.upgrade : null,
      expectContinue: isHttp11 && fields.expect === '100-continue',
    };
  }

  protected afterMessage(head: RequestHead): NextState {
    if (head.method === 'CONNECT' || head.upgrade !== null) return 'held';
    return head.keepAlive ? 'head' : 'closed';
  }
}

/** RFC 9112 §3.2: authority-form for CONNECT only, asterisk-form for OPTIONS only, else origin or absolute form. */
function checkTargetForm(method: string, target: string): void {
  const valid =
    method === 'CONNECT'
      ? AUTHORITY_FORM.test(target)
      : target.startsWith('/') || ABSOLUTE_FORM.test(target) || (target === '*' && method === 'OPTIONS');
  if (!valid)
    throw new HttpParseError('invalid-target', `'${target}' is not a valid request-target for ${method}`);
}
