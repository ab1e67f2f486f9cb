// A test-only compositor built on the generated codec: it advertises whatever globals a test asks for (privileged
// ones weston does not have, a wl_seat with a keyboard that headless weston lacks), answers wl_display.sync, binds,
// and wl_seat.get_keyboard with a keymap fd. Everything it sends in answer to one received chunk goes out in ONE
// write, fds included, so a client asking for 100 keyboards at once gets 100 keymap fds in a single sendmsg.
import { FdListener } from '../native/fd-listener.js';
import type { Chunk, FdSocket } from '../native/fd-socket.js';
import { closeFd, FdQueue } from '../native/fds.js';
import { listenIn } from '../native/namespace.js';
import {
  wl_callback,
  wl_display,
  wl_keyboard,
  wl_registry,
  wl_seat,
} from '../protocols/wayland/generated/wayland.generated.js';
import { knownInterfaces } from '../protocols/wayland/interfaces.js';
import type { InterfaceSpec, MessageSpec } from '../protocols/wayland/spec.js';
import {
  decodeArgs,
  encodeMessage,
  fdCount,
  HEADER_SIZE,
  type MessageArgs,
  messageNamed,
  readHeader,
  type UntypedNewId,
} from '../protocols/wayland/wire.js';
import { fileWithContent } from './mesh.js';

export interface StubGlobal {
  interface: string;
  version: number;
}

const XKB_V1 = 1;
const KEYBOARD_CAPABILITY = 2;

/** What one connection sends back for one received chunk: bytes and fds, written together. */
class Reply {
  readonly parts: Buffer[] = [];
  readonly fds: number[] = [];

  event<M extends MessageSpec>(objectId: number, message: M, args: MessageArgs<M>): void {
    const { data, fds } = encodeMessage(objectId, message, args);
    this.parts.push(data);
    this.fds.push(...fds);
  }
}

export class StubCompositor {
  connections = 0;
  /** Requests received, as `interface.request`, across connections. */
  readonly requests: string[] = [];
  readonly #sockets = new Set<FdSocket>();
  #keyboards = 0;

  private constructor(
    private readonly listener: FdListener,
    private readonly globals: readonly StubGlobal[],
    private readonly keymapFor: (index: number) => string,
  ) {
    listener.on('connection', (socket: FdSocket) => this.#serve(socket));
  }

  /** Listens at `path` inside the mount namespace of `pid` (0: the host). */
  static async start(
    pid: number,
    path: string,
    globals: readonly StubGlobal[],
    keymapFor: (index: number) => string = (index) => `xkb_keymap { keyboard ${index} };`,
  ): Promise<StubCompositor> {
    const { fd } = await listenIn({ pid, path });
    return new StubCompositor(new FdListener(fd), globals, keymapFor);
  }

  close(): void {
    this.listener.close();
    for (const socket of this.#sockets) socket.destroy();
  }

  #serve(socket: FdSocket): void {
    this.connections += 1;
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('end', () => socket.end());
    const objects = new Map<number, InterfaceSpec>([[1, wl_display]]);
    const fds = new FdQueue();
    let pending = Buffer.alloc(0);
    let serial = 0;
    socket.on('data', (chunk: Chunk) => {
      try {
        serveChunk(chunk);
      } catch {
        socket.destroy(); // a request the stub cannot place: hang up, as a compositor would
      }
    });
    const serveChunk = (chunk: Chunk) => {
      fds.push(chunk.fds);
      let data = pending.length > 0 ? Buffer.concat([pending, chunk.data]) : chunk.data;
      const reply = new Reply();
      while (data.length >= HEADER_SIZE) {
        const { objectId, opcode, size } = readHeader(data, 0);
        if (data.length < size) break;
        const iface = objects.get(objectId);
        const request = iface?.requests[opcode];
        if (!iface || !request) throw new Error(`stub: request ${opcode} for unknown object ${objectId}`);
        const received = fds.take(fdCount(request));
        const args = decodeArgs(request, data, 0, size, received);
        for (const fd of received) closeFd(fd); // the stub has no use for the client's fds
        this.requests.push(`${iface.name}.${request.name}`);
        this.#handle(iface, request, args, objects, reply, () => ++serial);
        if (request.destructor) {
          objects.delete(objectId);
          reply.event(1, messageNamed(wl_display.events, 'delete_id'), { id: objectId });
        }
        data = data.subarray(size);
      }
      pending = Buffer.from(data);
      if (reply.parts.length > 0) socket.write(Buffer.concat(reply.parts), reply.fds);
    };
  }

  #handle(
    iface: InterfaceSpec,
    request: MessageSpec,
    args: unknown[],
    objects: Map<number, InterfaceSpec>,
    reply: Reply,
    nextSerial: () => number,
  ): void {
    // Typed new_ids create objects of their declared interface.
    request.args.forEach((arg, index) => {
      const iface = arg.interface === undefined ? undefined : knownInterfaces.get(arg.interface);
      if (arg.type === 'new_id' && iface) objects.set(args[index] as number, iface);
    });
    const call = `${iface.name}.${request.name}`;
    if (call === 'wl_display.sync') {
      const callback = args[0] as number;
      reply.event(callback, messageNamed(wl_callback.events, 'done'), { callback_data: nextSerial() });
      objects.delete(callback);
      reply.event(1, messageNamed(wl_display.events, 'delete_id'), { id: callback });
    } else if (call === 'wl_display.get_registry') {
      this.globals.forEach((global, index) => {
        reply.event(args[0] as number, messageNamed(wl_registry.events, 'global'), {
          name: index + 1,
          interface: global.interface,
          version: global.version,
        });
      });
    } else if (call === 'wl_registry.bind') {
      const { interface: name, id } = args[1] as UntypedNewId;
      const bound = knownInterfaces.get(name) ?? { name, version: 1, requests: [], events: [], enums: [] };
      objects.set(id, bound);
      if (name === 'wl_seat') {
        reply.event(id, messageNamed(wl_seat.events, 'capabilities'), { capabilities: KEYBOARD_CAPABILITY });
        reply.event(id, messageNamed(wl_seat.events, 'name'), { name: 'stub-seat' });
      }
    } else if (call === 'wl_seat.get_keyboard') {
      const keyboard = args[0] as number;
      const keymap = this.keymapFor(this.#keyboards++);
      reply.event(keyboard, messageNamed(wl_keyboard.events, 'keymap'), {
        format: XKB_V1,
        fd: fileWithContent(keymap),
        size: Buffer.byteLength(keymap),
      });
      reply.event(keyboard, messageNamed(wl_keyboard.events, 'repeat_info'), { rate: 25, delay: 600 });
    }
  }
}
