// Connections whose bytes need no look (unix links), relayed by the addon without entering JavaScript
// (native/src/relay.c): what mediators/relay.ts does for a connection without filters, at a fraction of its cost
// per connection and per message.
import { binding } from './binding.js';
import { toError } from './fdio.js';
import { closeFds } from './fds.js';

type TallyHandle = { readonly tallyHandle: unique symbol };
type RelayHandle = { readonly relayHandle: unique symbol };

interface RelayBinding {
  relayTally(): TallyHandle;
  /** [bytes to provider, bytes to consumer, fds to provider, fds to consumer] */
  tallyRead(tally: TallyHandle): [number, number, number, number];
  /** The relays it holds (tallyRelay) that have not ended. */
  tallyRunning(tally: TallyHandle): number;
  /** Takes both fds unless it throws. onEnd runs once, when the relay ended by itself (not after relayStop). */
  relayStart(
    consumerFd: number,
    providerFd: number,
    tally: TallyHandle,
    idleHalfOpenMs: number,
    onEnd: (kind: number, detail: string | null) => void,
  ): RelayHandle;
  /** Ends the relay at once, both fds closed; idempotent. */
  relayStop(relay: RelayHandle): void;
  /** As relayStart, the relay held by the tally (no handle); onTrouble runs only for an end that is not closed. */
  tallyRelay(
    consumerFd: number,
    providerFd: number,
    tally: TallyHandle,
    idleHalfOpenMs: number,
    onTrouble: (kind: number, detail: string | null) => void,
  ): void;
  /** Ends every running relay the tally holds, as relayStop does. */
  tallyEndAll(tally: TallyHandle): void;
}

const native = binding as RelayBinding;

/** How a relay ended, as the addon numbers it. */
const END_KINDS = ['closed', 'failed', 'reaped'] as const;

export interface RelayEnd {
  /** closed: both sides closed (or it was destroyed); failed: a side failed; reaped: half-open and idle too long. */
  kind: (typeof END_KINDS)[number];
  /** Which side failed and how, or how long it was idle; null for a plain close. */
  detail: string | null;
}

interface Traffic {
  toProvider: number;
  toConsumer: number;
}

function relayEnd(kind: number, detail: string | null): RelayEnd {
  return { kind: END_KINDS[kind] ?? 'failed', detail };
}

/**
 * What the relays of one link moved, counted by the addon as it moves it; and the relays it holds itself
 * (`relay`): connections whose provider was dialled at once, relayed with no JavaScript object or callback per
 * connection.
 */
export class RelayTally {
  readonly handle: TallyHandle = native.relayTally();
  readonly #onTrouble: (kind: number, detail: string | null) => void;

  /** `onTrouble` hears of a relay held here that failed or was reaped; a plain close says nothing. */
  constructor(onTrouble: (end: RelayEnd) => void = () => {}) {
    this.#onTrouble = (kind, detail) => onTrouble(relayEnd(kind, detail));
  }

  /** The counts at the last readInto. */
  #read: readonly number[] = [0, 0, 0, 0];

  /** Adds what moved since the last call to a link's counters (which may count other relays too). */
  readInto(counters: { bytes: Traffic; fds: Traffic }): void {
    const now = native.tallyRead(this.handle);
    const [bytesToProvider, bytesToConsumer, fdsToProvider, fdsToConsumer] = now.map(
      (count, index) => count - (this.#read[index] as number),
    ) as [number, number, number, number];
    this.#read = now;
    counters.bytes.toProvider += bytesToProvider;
    counters.bytes.toConsumer += bytesToConsumer;
    counters.fds.toProvider += fdsToProvider;
    counters.fds.toConsumer += fdsToConsumer;
  }

  /** The relays it holds that have not ended. */
  get running(): number {
    return native.tallyRunning(this.handle);
  }

  /** Relays `consumerFd` and `providerFd` (both owned from now on, closed if this throws), the relay held here
   * until it ends. */
  relay(consumerFd: number, providerFd: number, idleHalfOpenMs: number): void {
    try {
      native.tallyRelay(consumerFd, providerFd, this.handle, idleHalfOpenMs, this.#onTrouble);
    } catch (thrown) {
      closeFds([consumerFd, providerFd]);
      this.#onTrouble(END_KINDS.indexOf('failed'), toError(thrown).message);
    }
  }

  /** Ends every relay held here at once: their sockets closed, whatever was on its way dropped. */
  endAll(): void {
    native.tallyEndAll(this.handle);
  }
}

/**
 * One consumer connection relayed by the addon. It holds the consumer's fd from its accept; `start` adds the
 * provider's fd and hands both to the addon; `destroy` ends it wherever it is. `onEnd` runs once, however it
 * ended (after `destroy`, before that returns).
 */
export class ByteRelay {
  #consumerFd: number;
  #handle: RelayHandle | null = null;
  #ended = false;
  readonly #tally: RelayTally;
  readonly #idleHalfOpenMs: number;
  readonly #onEnd: (end: RelayEnd) => void;

  /** Owns `consumerFd` from now on. */
  constructor(consumerFd: number, tally: RelayTally, idleHalfOpenMs: number, onEnd: (end: RelayEnd) => void) {
    this.#consumerFd = consumerFd;
    this.#tally = tally;
    this.#idleHalfOpenMs = idleHalfOpenMs;
    this.#onEnd = onEnd;
  }

  get destroyed(): boolean {
    return this.#ended;
  }

  /** Relays the consumer to `providerFd` (owned from now on; closed at once if the relay already ended). */
  start(providerFd: number): void {
    if (this.#ended || this.#handle) {
      closeFds([providerFd]);
      return;
    }
    try {
      this.#handle = native.relayStart(
        this.#consumerFd,
        providerFd,
        this.#tally.handle,
        this.#idleHalfOpenMs,
        (kind, detail) => this.#end(relayEnd(kind, detail)),
      );
    } catch (thrown) {
      closeFds([this.#consumerFd, providerFd]);
      this.#end({ kind: 'failed', detail: toError(thrown).message });
    }
  }

  /** Ends the connection at once: both sockets closed, whatever was on its way dropped. */
  destroy(): void {
    if (this.#ended) return;
    if (this.#handle) native.relayStop(this.#handle);
    else closeFds([this.#consumerFd]);
    this.#end({ kind: 'closed', detail: null });
  }

  #end(end: RelayEnd): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#onEnd(end);
  }
}
