// A raw Wayland client for tests, built on the generated codec: it sends typed requests (or arbitrary bytes), keeps
// the client's view of object ids, and decodes every event with the fds it carries. Tests use it to drive the
// mediator where libwayland clients would refuse to misbehave.
import type { Chunk, FdSocket } from '../native/fd-socket.js';
import { closeFd, FdQueue } from '../native/fds.js';
import { wl_display, wl_registry } from '../protocols/wayland/generated/wayland.generated.js';
import { knownInterfaces } from '../protocols/wayland/interfaces.js';
import type { InterfaceSpec, MessageSpec } from '../protocols/wayland/spec.js';
import {
  type ArgValue,
  decodeArgs,
  encodeMessage,
  fdCount,
  HEADER_SIZE,
  type MessageArgs,
  readHeader,
  SERVER_ID_START,
  type UntypedNewId,
} from '../protocols/wayland/wire.js';

export interface WaylandEvent {
  objectId: number;
  interface: string;
  name: string;
  args: ArgValue[];
  fds: number[];
}

export interface Global {
  name: number;
  interface: string;
  version: number;
}

export interface ReceivedChunk {
  bytes: number;
  fds: number;
}

export class RawWaylandClient {
  readonly events: WaylandEvent[] = [];
  /** Every chunk as it arrived: how many bytes and fds each recvmsg brought. */
  readonly chunks: ReceivedChunk[] = [];
  /** Resolves when the compositor (or the mediator) closes the connection. */
  readonly closed: Promise<void>;
  readonly #objects = new Map<number, InterfaceSpec>([[1, wl_display]]);
  readonly #fds = new FdQueue();
  #pending = Buffer.alloc(0);
  #nextId = 2;
  #waiters: (() => void)[] = [];

  constructor(readonly socket: FdSocket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    socket.on('data', (chunk: Chunk) => this.#receive(chunk));
    socket.on('end', () => socket.end());
  }

  /** A fresh client-side object id of `iface`. */
  allocate(iface: InterfaceSpec): number {
    const id = this.#nextId++;
    this.#objects.set(id, iface);
    return id;
  }

  /** Sends a request; new_ids among `args` must come from allocate() (or bind()). */
  request<M extends MessageSpec>(objectId: number, message: M, args: MessageArgs<M>): void {
    const { data, fds } = encodeMessage(objectId, message, args);
    this.socket.write(data, fds);
  }

  /** Sends bytes as they are, with fds riding on their first byte. */
  sendRaw(data: Buffer, fds: number[] = []): void {
    this.socket.write(data, fds);
  }

  /** wl_display.sync and wait for its done: every earlier request has been handled. */
  async roundtrip(): Promise<void> {
    const callback = this.allocate(knownInterfaces.get('wl_callback') as InterfaceSpec);
    this.request(1, wl_display.requests[0], { callback });
    await this.waitFor((event) => event.objectId === callback && event.name === 'done');
  }

  /** Creates a registry and returns the globals it announces. */
  async globals(): Promise<{ registry: number; globals: Global[] }> {
    const registry = this.allocate(wl_registry);
    this.request(1, wl_display.requests[1], { registry });
    await this.roundtrip();
    const globals = this.events
      .filter((event) => event.objectId === registry && event.name === 'global')
      .map((event) => {
        const [name, iface, version] = event.args as [number, string, number];
        return { name, interface: iface, version };
      });
    return { registry, globals };
  }

  /** wl_registry.bind of a global; returns the new object's id. */
  bind(registry: number, global: Global, version = 1): number {
    const iface = knownInterfaces.get(global.interface) ?? {
      name: global.interface,
      version,
      requests: [],
      events: [],
      enums: [],
    };
    const id = this.allocate(iface);
    const newId: UntypedNewId = { interface: global.interface, version, id };
    this.request(registry, wl_registry.requests[0], { name: global.name, id: newId });
    return id;
  }

  /** Resolves with the first event (already received or to come) that matches; rejects if the connection closes. */
  waitFor(match: (event: WaylandEvent) => boolean): Promise<WaylandEvent> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events.find(match);
        if (found) {
          resolve(found);
          return true;
        }
        if (this.socket.destroyed) {
          reject(new Error(`connection closed; events: ${this.events.map(describe).join(', ')}`));
          return true;
        }
        return false;
      };
      if (check()) return;
      const waiter = () => {
        if (!check()) this.#waiters.push(waiter);
      };
      this.#waiters.push(waiter);
    });
  }

  /** The wl_display.error the connection ended with, if any. */
  displayError(): { objectId: number; code: number; message: string } | undefined {
    const event = this.events.find((candidate) => candidate.objectId === 1 && candidate.name === 'error');
    if (!event) return undefined;
    const [objectId, code, message] = event.args as [number, number, string];
    return { objectId, code, message };
  }

  close(): void {
    this.socket.destroy();
    for (const event of this.events) for (const fd of event.fds) closeFd(fd);
    this.#fds.close();
  }

  #receive(chunk: Chunk): void {
    this.chunks.push({ bytes: chunk.data.length, fds: chunk.fds.length });
    this.#fds.push(chunk.fds);
    let data = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk.data]) : chunk.data;
    while (data.length >= HEADER_SIZE) {
      const { objectId, opcode, size } = readHeader(data, 0);
      if (data.length < size) break;
      this.#event(objectId, opcode, data.subarray(0, size));
      data = data.subarray(size);
    }
    this.#pending = Buffer.from(data);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) waiter();
  }

  #event(objectId: number, opcode: number, message: Buffer): void {
    const iface = this.#objects.get(objectId);
    const spec = iface?.events[opcode];
    if (!iface || !spec) throw new Error(`event ${opcode} for unknown object ${objectId}`);
    const fds = this.#fds.take(fdCount(spec));
    const args = decodeArgs(spec, message, 0, message.length, fds);
    spec.args.forEach((arg, index) => {
      const value = args[index];
      if (arg.type === 'new_id' && typeof value === 'number' && value >= SERVER_ID_START && arg.interface)
        this.#objects.set(value, knownInterfaces.get(arg.interface) as InterfaceSpec);
    });
    if (iface === wl_display && spec.name === 'delete_id') this.#objects.delete(args[0] as number);
    this.events.push({ objectId, interface: iface.name, name: spec.name, args, fds });
  }
}

function describe(event: WaylandEvent): string {
  return `${event.interface}@${event.objectId}.${event.name}`;
}
