// The protocol state of one Wayland client connection, shared by its two directions: which interface (and version)
// every object id has, so each message can be checked and its fds counted; which globals the client may see.
//
// Object ids: the client allocates ids below 0xff000000 (new_id in requests), the compositor ids from 0xff000000
// (new_id in events). A client id is freed by wl_display.delete_id; until the client reuses it, late messages to it
// are still understood (as the compositor's zombie objects are), for the ZOMBIES_KEPT ids freed last: a client that
// never reuses an id cannot grow the session without bound. A compositor id is reused by the compositor at will.
// `wl_registry.bind` creates an object of the interface and version the client names in it.
//
// Globals the role may not see never reach the client (their `global` and `global_remove` events are dropped), and
// a bind to any global the client was not shown is answered the way libwayland answers a bind to a name it does not
// know, a wl_display.error on the registry, without reaching the compositor; then the client is disconnected.

import type { Logger } from '../log/logger.js';
import { wl_display } from '../protocols/wayland/generated/wayland.generated.js';
import { knownInterfaces } from '../protocols/wayland/interfaces.js';
import type { MessageSpec } from '../protocols/wayland/spec.js';
import {
  type ArgValue,
  decodeArgs,
  encodeMessage,
  fdCount,
  HEADER_SIZE,
  messageNamed,
  readUint32,
  SERVER_ID_START,
  type UntypedNewId,
  WaylandWireError,
} from '../protocols/wayland/wire.js';
import { type FilterSink, RelayRejection } from './relay.js';
import { type Decision, DROP, type FramedMessage, OPAQUE, WaylandFramer } from './wayland-framer.js';

type Special = 'bind' | 'global' | 'global_remove' | 'delete_id' | null;

/** A new_id argument whose interface the protocol fixes, where it sits in a message that is not decoded. */
interface PlainNewId {
  /** Bytes from the message's start. */
  readonly offset: number;
  readonly interface: string;
  readonly nullable: boolean;
}

interface CompiledMessage {
  readonly spec: MessageSpec;
  readonly forward: Decision;
  /** Indexes of new_id arguments. */
  readonly newIds: readonly number[];
  readonly special: Special;
  /**
   * A message of this size is handled without decoding: its arguments are all words (int, uint, fixed, fd, a new_id
   * of a fixed interface), which decoding could only refuse for a wrong size or a null new_id, and what is needed of
   * them (new ids, the id of delete_id, the name of global_remove) is read where it sits. -1: always decoded.
   */
  readonly undecodedSize: number;
  /** The new_id arguments of a message of undecodedSize. */
  readonly plainNewIds: readonly PlainNewId[];
}

interface CompiledInterface {
  readonly name: string;
  readonly version: number;
  readonly requests: readonly CompiledMessage[];
  readonly events: readonly CompiledMessage[];
}

interface ObjectEntry {
  /** null: an interface we have no table for (relayed opaquely). */
  readonly iface: CompiledInterface | null;
  readonly name: string;
  readonly version: number;
  /** False once wl_display.delete_id freed this client id: the client may then reuse it. */
  live: boolean;
  /** When it was freed: the number of ids freed before it in this session. */
  freedAs?: number;
}

const SPECIALS: Record<string, Special> = {
  'wl_registry.request.bind': 'bind',
  'wl_registry.event.global': 'global',
  'wl_registry.event.global_remove': 'global_remove',
  'wl_display.event.delete_id': 'delete_id',
};

/** Freed client ids still understood; older ones are forgotten (a late message to one then ends the connection). */
export const ZOMBIES_KEPT = 1024;

const compiledInterfaces = new Map<string, CompiledInterface>();

function compileMessage(iface: string, kind: 'request' | 'event', spec: MessageSpec): CompiledMessage {
  const newIds = spec.args.flatMap((arg, index) => (arg.type === 'new_id' ? [index] : []));
  const special = SPECIALS[`${iface}.${kind}.${spec.name}`] ?? null;
  const plainNewIds: PlainNewId[] = [];
  let undecodedSize = HEADER_SIZE;
  for (const arg of spec.args) {
    if (arg.type === 'new_id' && arg.interface !== undefined)
      plainNewIds.push({ offset: undecodedSize, interface: arg.interface, nullable: arg.nullable === true });
    else if (arg.type === 'fd') continue;
    else if (arg.type !== 'int' && arg.type !== 'uint' && arg.type !== 'fixed') {
      undecodedSize = -1;
      break;
    }
    undecodedSize += 4;
  }
  return { spec, forward: fdCount(spec), newIds, special, undecodedSize, plainNewIds };
}

/** The `index`th word argument of a message of its kind's undecodedSize. */
function wordArgument(message: FramedMessage, index: number): number {
  return readUint32(message.data, message.start + HEADER_SIZE + 4 * index);
}

/** The interface's tables, or null if no generated protocol defines it. */
function compiledInterface(name: string): CompiledInterface | null {
  const cached = compiledInterfaces.get(name);
  if (cached) return cached;
  const spec = knownInterfaces.get(name);
  if (!spec) return null;
  const compiled = {
    name,
    version: spec.version,
    requests: spec.requests.map((message) => compileMessage(name, 'request', message)),
    events: spec.events.map((message) => compileMessage(name, 'event', message)),
  };
  compiledInterfaces.set(name, compiled);
  return compiled;
}

const displayError = messageNamed(wl_display.events, 'error');
const INVALID_OBJECT = wl_display.enums[0].entries.invalid_object;

export interface WaylandConnectionOptions {
  /** Whether a global of this interface is shown to the client. */
  visible: (iface: string) => boolean;
  log: Logger;
  /** Reports a bind to a global hidden from the role (`what`: `bind <interface>`). */
  refused: (what: string) => void;
}

export class WaylandConnection {
  /** Client → compositor. */
  readonly toProvider = new WaylandFramer((message, sink) => this.#request(message, sink));
  /** Compositor → client. */
  readonly toConsumer = new WaylandFramer((message) => this.#event(message));

  readonly #objects = new Map<number, ObjectEntry>();
  /** Some object has an interface without a table: messages to ids we cannot place are relayed opaquely. */
  #opaque = false;
  readonly #warned = new Set<string>();
  /** Global name → interface, for the globals shown to the client. */
  readonly #shown = new Map<number, string>();
  readonly #hidden = new Set<number>();
  /** The client ids freed last by wl_display.delete_id: the one freed as n (ObjectEntry.freedAs) at n % ZOMBIES_KEPT. */
  readonly #zombies: number[] = [];
  #freed = 0;

  constructor(private readonly options: WaylandConnectionOptions) {
    this.#objects.set(1, {
      iface: compiledInterface(wl_display.name),
      name: wl_display.name,
      version: 1,
      live: true,
    });
  }

  #request(message: FramedMessage, sink: FilterSink): Decision {
    const entry = this.#objects.get(message.objectId);
    const compiled = this.#lookup(message, entry, true);
    if (compiled === null || entry === undefined) return OPAQUE;
    if (compiled.undecodedSize === message.size) {
      this.#createPlain(message, entry, compiled, true);
      return compiled.forward;
    }
    const values = this.#decode(message, entry, compiled, 'client');
    if (compiled.special === 'bind') this.#checkBind(message.objectId, values, sink);
    this.#createObjects(entry, compiled, values, true);
    return compiled.forward;
  }

  #event(message: FramedMessage): Decision {
    const entry = this.#objects.get(message.objectId);
    const compiled = this.#lookup(message, entry, false);
    if (compiled === null || entry === undefined) return OPAQUE;
    if (compiled.undecodedSize === message.size) {
      // Of the special events, only these two have word arguments (global has a string: always decoded).
      const { special } = compiled;
      if (special === 'global_remove' && this.#hidden.has(wordArgument(message, 0))) return DROP;
      if (special === 'delete_id') {
        const id = wordArgument(message, 0);
        const deleted = id < SERVER_ID_START ? this.#objects.get(id) : undefined;
        if (deleted) this.#bury(id, deleted);
      }
      this.#createPlain(message, entry, compiled, false);
      return compiled.forward;
    }
    const values = this.#decode(message, entry, compiled, 'compositor');
    if (compiled.special === 'global') {
      const [name, iface] = values as [number, string];
      if (!this.options.visible(iface)) {
        this.#hidden.add(name);
        this.options.log.debug('wayland global hidden', { interface: iface, name });
        return DROP;
      }
      this.#shown.set(name, iface);
    }
    this.#createObjects(entry, compiled, values, false);
    return compiled.forward;
  }

  /** A freed client id stays understood until reused, among the ZOMBIES_KEPT freed last. */
  #bury(id: number, entry: ObjectEntry): void {
    const freedAs = this.#freed;
    entry.live = false;
    entry.freedAs = freedAs;
    this.#freed += 1;
    // The id freed ZOMBIES_KEPT ids ago leaves its slot to this one.
    const slot = freedAs % ZOMBIES_KEPT;
    if (freedAs >= ZOMBIES_KEPT) {
      const oldest = this.#zombies[slot] as number;
      const zombie = this.#objects.get(oldest);
      // Not if the id was reused since (and maybe freed again, later).
      if (zombie && !zombie.live && zombie.freedAs === freedAs - ZOMBIES_KEPT) this.#objects.delete(oldest);
    }
    this.#zombies[slot] = id;
  }

  /**
   * What a message to `entry` (its object, looked up by the caller) is, or null (opaque) when we cannot know its
   * layout; never a message of an object that does not exist.
   */
  #lookup(
    message: FramedMessage,
    entry: ObjectEntry | undefined,
    fromClient: boolean,
  ): CompiledMessage | null {
    const sender = fromClient ? 'client' : 'compositor';
    if (!entry) {
      if (this.#opaque) return null;
      throw new RelayRejection(
        `wayland: ${sender} sent opcode ${message.opcode} to unknown object ${message.objectId} (${message.size} bytes)`,
      );
    }
    if (!entry.iface) return null;
    const compiled = (fromClient ? entry.iface.requests : entry.iface.events)[message.opcode];
    if (compiled) return compiled;
    // Bound at a version newer than our tables: the message is legitimate, we just do not know it.
    if (entry.version > entry.iface.version) {
      this.#warnOnce(
        `${entry.name}@${entry.version}`,
        'wayland message beyond known version relayed opaquely',
        {
          interface: entry.name,
          version: entry.version,
          known: entry.iface.version,
        },
      );
      return null;
    }
    throw new RelayRejection(
      `wayland: ${sender} sent unknown ${fromClient ? 'request' : 'event'} opcode ${message.opcode} to ${entry.name}@${message.objectId}`,
    );
  }

  #decode(message: FramedMessage, entry: ObjectEntry, compiled: CompiledMessage, sender: string): ArgValue[] {
    try {
      return decodeArgs(compiled.spec, message.data, message.start, message.start + message.size, null);
    } catch (error) {
      if (!(error instanceof WaylandWireError)) throw error;
      throw new RelayRejection(
        `wayland: malformed ${entry.name}.${compiled.spec.name} from ${sender} on object ${message.objectId}: ${error.message}`,
      );
    }
  }

  /** The objects a message of undecodedSize creates (a null new_id where none is allowed is refused as decoding would). */
  #createPlain(
    message: FramedMessage,
    parent: ObjectEntry,
    compiled: CompiledMessage,
    fromClient: boolean,
  ): void {
    for (const newId of compiled.plainNewIds) {
      const id = readUint32(message.data, message.start + newId.offset);
      if (id !== 0) this.#create(id, newId.interface, parent.version, fromClient);
      else if (!newId.nullable) this.#decode(message, parent, compiled, fromClient ? 'client' : 'compositor');
    }
  }

  #createObjects(
    parent: ObjectEntry,
    compiled: CompiledMessage,
    values: ArgValue[],
    fromClient: boolean,
  ): void {
    for (const index of compiled.newIds) {
      const value = values[index] as number | UntypedNewId;
      if (typeof value === 'number') {
        const arg = compiled.spec.args[index];
        if (value !== 0) this.#create(value, arg?.interface ?? '', parent.version, fromClient);
      } else this.#create(value.id, value.interface, value.version, fromClient);
    }
  }

  #create(id: number, name: string, version: number, fromClient: boolean): void {
    if (fromClient) {
      if (id === 0 || id >= SERVER_ID_START)
        throw new RelayRejection(`wayland: client created object ${id}, outside the client's id range`);
      const existing = this.#objects.get(id);
      if (existing?.live)
        throw new RelayRejection(
          `wayland: client reused new_id ${id} while ${existing.name}@${id} is still alive`,
        );
    } else if (id < SERVER_ID_START) {
      throw new RelayRejection(`wayland: compositor created object ${id}, outside its id range`);
    }
    const iface = compiledInterface(name);
    if (!iface) {
      this.#opaque = true;
      this.#warnOnce(name, 'wayland interface unknown, relayed opaquely', { interface: name });
    }
    this.#objects.set(id, { iface, name, version, live: true });
  }

  /** A bind must name a global the client was shown, with its interface; anything else never reaches the compositor. */
  #checkBind(registry: number, values: ArgValue[], sink: FilterSink): void {
    const name = values[0] as number;
    const { interface: iface } = values[1] as UntypedNewId;
    const shown = this.#shown.get(name);
    if (shown === iface) return;
    const reason = this.#hidden.has(name)
      ? 'hidden from this role'
      : shown === undefined
        ? 'never offered to this client'
        : `it is a ${shown}`;
    sink.reply(
      encodeMessage(1, displayError, {
        object_id: registry,
        code: INVALID_OBJECT,
        message: `invalid global ${iface} (${name})`,
      }).data,
    );
    if (this.#hidden.has(name)) this.options.refused(`bind ${iface}`);
    throw new RelayRejection(`wayland: bind to global ${name} (${iface}) refused: ${reason}`);
  }

  #warnOnce(key: string, event: string, fields: Record<string, unknown>): void {
    if (this.#warned.has(key)) return;
    this.#warned.add(key);
    this.options.log.warn(event, fields);
  }
}
