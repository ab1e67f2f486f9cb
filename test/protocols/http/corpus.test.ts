// Runs the request-smuggling corpus (test/corpus/http/*.json) through the request parser in many chunkings.
// An accepted case is re-serialized in normalized form, and llhttp must read those bytes as the same messages.
import { describe, expect, it } from 'vitest';
import {
  frameBodyEvent,
  type RequestHead,
  RequestParser,
  serializeRequestHead,
} from '../../../protocols/http/index.js';
import { corpusBytes as bytesOf, corpusCases } from '../../../testkit/http-corpus.js';
import { parseEveryWay } from './helpers.js';
import { llhttpParseRequests } from './llhttp.js';
import { collect } from './streams.js';

const cases = corpusCases();

/** The messages of a stream re-serialized as the mediator would forward them: same heads, normalized framing. */
function normalize(bytes: Buffer): Buffer {
  const out: Buffer[] = [];
  let head: RequestHead | null = null;
  for (const event of new RequestParser().push(bytes)) {
    if (event.kind === 'head') {
      head = event.head;
      out.push(serializeRequestHead(head));
    } else if ((event.kind === 'body' || event.kind === 'end') && head !== null) {
      out.push(...frameBodyEvent(head.framing, event));
    }
  }
  return Buffer.concat(out);
}

describe('HTTP smuggling corpus', () => {
  it('has at least 60 cases with unique names and well-formed expectations', () => {
    expect(cases.length).toBeGreaterThanOrEqual(60);
    expect(new Set(cases.map((entry) => entry.name)).size).toBe(cases.length);
    for (const entry of cases) {
      expect(entry.why.length, entry.name).toBeGreaterThan(0);
      expect(entry.outcome === 'reject' ? typeof entry.code : entry.code, entry.name).toBe(
        entry.outcome === 'reject' ? 'string' : undefined,
      );
    }
  });

  // Tagged: the same cases run through the rest mediator (test/mediators/rest-corpus.test.ts).
  it.each(cases.map((entry) => [`${entry.file}: ${entry.name}`, entry] as const))(
    '%s',
    { tags: ['http-corpus'] },
    (_, entry) => {
      const bytes = bytesOf(entry.input);
      const outcome = parseEveryWay(() => new RequestParser(), bytes);
      if (entry.outcome === 'reject') {
        expect(outcome.error).toBe(entry.code);
        return;
      }
      expect(outcome.error).toBeNull();
      expect(outcome.messages.filter((message) => message.complete)).toHaveLength(entry.messages ?? 1);
      const [first] = outcome.messages;
      if (entry.method !== undefined) expect(first?.head.method).toBe(entry.method);
      if (entry.target !== undefined) expect(first?.head.target).toBe(entry.target);
      if (entry.body !== undefined) expect(first?.body).toBe(entry.body);
      if (entry.headers !== undefined) expect(first?.head.headers).toEqual(entry.headers);
      if (entry.trailers !== undefined) expect(first?.trailers).toEqual(entry.trailers);

      const normalized = normalize(bytes);
      const ours = collect(new RequestParser().push(normalized));
      expect(ours.error).toBeNull();
      const oracle = llhttpParseRequests([normalized]);
      expect(oracle.error, oracle.error?.reason).toBeNull();
      expect(oracle.messages).toHaveLength(outcome.messages.length);
      outcome.messages.forEach((message, index) => {
        const theirs = oracle.messages[index];
        expect(ours.messages[index]?.head).toEqual(message.head);
        expect(ours.messages[index]?.body).toBe(message.body);
        expect({
          method: theirs?.method,
          target: theirs?.target,
          headers: theirs?.headers,
          body: theirs?.body.toString('latin1'),
          trailers: theirs?.trailers,
        }).toEqual({
          method: message.head.method,
          target: message.head.target,
          headers: message.head.headers,
          body: message.body,
          trailers: message.trailers,
        });
      });
    },
  );
});
