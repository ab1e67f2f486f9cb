// What happened in a running stack, newest last: container actions and exits, daemon restarts, link state
// changes. Shown by the live page and `pvx-sim up`; bounded, so a long run costs a fixed amount of memory.

export type EventKind = 'container' | 'daemon' | 'link' | 'ctrl';

export interface SimEvent {
  /** ISO time. */
  time: string;
  kind: EventKind;
  text: string;
  /** A failure (link failed, action failed): shown as such. */
  bad: boolean;
}

const KEEP = 200;

export class EventLog {
  private readonly items: SimEvent[] = [];
  private readonly listeners = new Set<(event: SimEvent) => void>();

  add(kind: EventKind, text: string, bad = false): void {
    const event = { time: new Date().toISOString(), kind, text, bad };
    this.items.push(event);
    if (this.items.length > KEEP) this.items.splice(0, this.items.length - KEEP);
    for (const listener of this.listeners) listener(event);
  }

  recent(count = KEEP): SimEvent[] {
    return this.items.slice(-count);
  }

  /** Calls `listener` with every later event; returns the unsubscribe function. */
  subscribe(listener: (event: SimEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
