// Fuzz target of the Wayland mediator's connection state: conversations generated from the protocol tables (globals, binds,
// requests and events with new objects, destructors and delete_id, fds), chunked, with odd bytes mixed in. The
// session must relay every message of a valid conversation, each with exactly its fds, drop only hidden globals,
// refuse binds to them, and account for every fd.
import fc from 'fast-check';
import { RelayRejection } from '../../../mediators/relay.js';
import { WaylandConnection } from '../../../mediators/wayland-connection.js';
import { DEFAULT_POLICY, visibilityFor } from '../../../mediators/wayland-policy.js';
import { knownInterfaces } from '../../../protocols/wayland/interfaces.js';
import type { InterfaceSpec, MessageSpec } from '../../../protocols/wayland/spec.js';
import type { ArgValue, MessageArgs } from '../../../protocols/wayland/wire.js';
import { encodeMessage, MAX_FDS_PER_WAYLAND_READ, SERVER_ID_START } from '../../../protocols/wayland/wire.js';
import { prng } from '../../protocols/http/streams.js';
import { checkFdsAccountedFor, openFds } from '../fds.js';
import { disagree } from '../oracle.js';
import type { FuzzTarget } from '../target.js';
import { quiet } from './mediators.js';

const INTERFACES = [...knownInterfaces.values()].filter(
  (iface) => iface.name !== 'wl_display' && iface.name !== 'wl_registry',
);
/** Interfaces with a request or event that carries an fd: globals are drawn from them every other time. */
const WITH_FDS = INTERFACES.filter((iface) =>
  [...iface.requests, ...iface.events].some((message) => message.args.some((arg) => arg.type === 'fd')),
);
const visible = visibilityFor(DEFAULT_POLICY, 'any');

type Action = { kind: number; a: number; b: number; cut: number };
type Step = {
  fromClient: boolean;
  data: Buffer;
  fdCount: number;
  cut: number;
  dropped: boolean;
  hiddenBind: boolean;
  garbage: boolean;
  /** The conversation ends inside this message: only its first part is sent, then the stream ends. */
  truncated?: boolean;
};

/** A global no generated table knows: its objects' messages are relayed opaquely. */
const UNKNOWN: InterfaceSpec = { name: 'zz_unknown_v1', version: 3, requests: [], events: [], enums: [] };

interface Live {
  iface: InterfaceSpec;
  version: number;
}

/** Turns abstract actions into a conversation a compositor and a client could have. */
function compile(actions: readonly Action[]): Step[] {
  const registry = knownInterfaces.get('wl_registry') as InterfaceSpec;
  const display = knownInterfaces.get('wl_display') as InterfaceSpec;
  const objects = new Map<number, Live>([[2, { iface: registry, version: 1 }]]);
  const destroyed: number[] = [];
  const globals: { name: number; iface: InterfaceSpec; version: number }[] = [];
  let nextClient = 3;
  let nextServer = SERVER_ID_START;
  const steps: Step[] = [];
  const step = (
    fromClient: boolean,
    objectId: number,
    spec: MessageSpec,
    args: Record<string, ArgValue>,
    extra: Partial<Step> = {},
  ) => {
    const { data, fds } = encodeMessage(objectId, spec, args as MessageArgs<MessageSpec>);
    steps.push({
      fromClient,
      data,
      fdCount: fds.length,
      cut: 0,
      dropped: false,
      hiddenBind: false,
      garbage: false,
      ...extra,
    });
  };
  step(true, 1, display.requests[1] as MessageSpec, { registry: 2 });
  for (const { kind, a, b, cut } of actions) {
    const random = prng(a * 7919 + b);
    const live = [...objects.entries()];
    const argsFor = (
      spec: MessageSpec,
      fromClient: boolean,
      parentVersion: number,
    ): Record<string, ArgValue> | null => {
      const args: Record<string, ArgValue> = {};
      for (const arg of spec.args) {
        const word = Math.floor(random() * 0x7fffffff);
        switch (arg.type) {
          case 'int':
          case 'uint':
          case 'fixed':
            args[arg.name] = arg.type === 'fixed' ? (word % 1000) / 4 : word;
            break;
          case 'string':
            args[arg.name] = arg.nullable && word % 3 === 0 ? null : `s${word % 97}`;
            break;
          case 'array':
            args[arg.name] = Buffer.from([word & 0xff, 1, 2]);
            break;
          case 'fd':
            args[arg.name] = 0; // a placeholder: the real fds are attached when the step is played
            break;
          case 'object':
            args[arg.name] = arg.nullable && word % 4 === 0 ? 0 : (live[word % live.length]?.[0] ?? 1);
            break;
          case 'new_id': {
            if (arg.interface === undefined) return null; // only wl_registry.bind has one, played by its own action
            const iface = knownInterfaces.get(arg.interface);
            if (!iface) return null;
            const id = fromClient ? nextClient++ : nextServer++;
            objects.set(id, { iface, version: Math.min(parentVersion, iface.version) });
            args[arg.name] = id;
            break;
          }
        }
      }
      return args;
    };
    switch (kind % 8) {
      case 0: {
        const pool = a % 2 === 0 ? WITH_FDS : INTERFACES;
        const iface = b % 10 === 9 ? UNKNOWN : (pool[(a >> 1) % pool.length] as InterfaceSpec);
        const name = globals.length + 1;
        const version = 1 + (b % iface.version);
        globals.push({ name, iface, version });
        step(
          false,
          2,
          registry.events[0] as MessageSpec,
          { name, interface: iface.name, version },
          { dropped: !visible(iface.name) },
        );
        break;
      }
      case 1: {
        const global = globals[a % Math.max(1, globals.length)];
        if (!global) break;
        const id = nextClient++;
        const hiddenBind = !visible(global.iface.name);
        step(
          true,
          2,
          registry.requests[0] as MessageSpec,
          { name: global.name, id: { interface: global.iface.name, version: global.version, id } },
          { hiddenBind },
        );
        objects.set(id, { iface: global.iface, version: global.version });
        break;
      }
      case 2:
      case 3: {
        const fromClient = kind % 6 === 2;
        const candidates = live.filter(
          ([id, o]) => id !== 2 && (fromClient ? o.iface.requests : o.iface.events).length > 0,
        );
        const [id, object] = candidates[a % Math.max(1, candidates.length)] ?? [];
        if (id === undefined || !object) break;
        const list = fromClient ? object.iface.requests : object.iface.events;
        const spec = list[b % list.length] as MessageSpec;
        const args = argsFor(spec, fromClient, object.version);
        if (!args) break;
        step(fromClient, id, spec, args, { cut });
        if (spec.destructor && id < SERVER_ID_START) {
          objects.delete(id);
          destroyed.push(id);
        }
        break;
      }
      case 4: {
        const id = destroyed.shift();
        if (id !== undefined) step(false, 1, display.events[1] as MessageSpec, { id });
        break;
      }
      case 5:
        steps.push({
          fromClient: b % 2 === 0,
          data: Buffer.from([a & 0xff, 0, 0, 0, 9, 0, 8, 0]),
          fdCount: 0,
          cut,
          dropped: false,
          hiddenBind: false,
          garbage: true,
        });
        break;
      case 6: {
        // A message to an object of an unknown interface: relayed as it is, with whatever fds came along.
        const opaque = live.filter(([, o]) => o.iface === UNKNOWN);
        const [id] = opaque[a % Math.max(1, opaque.length)] ?? [];
        if (id === undefined) break;
        const size = 8 + 4 * (b % 4);
        const data = Buffer.alloc(size);
        data.writeUInt32LE(id, 0);
        data.writeUInt32LE(((size << 16) | (a % 4)) >>> 0, 4);
        steps.push({
          fromClient: b % 2 === 0,
          data,
          fdCount: b % 3,
          cut,
          dropped: false,
          hiddenBind: false,
          garbage: false,
        });
        break;
      }
      case 7: {
        const last = steps.at(-1);
        if (last && !last.dropped) steps.push({ ...last, fdCount: 0, truncated: true });
        return steps;
      }
    }
  }
  return steps;
}

export const waylandConnectionTarget: FuzzTarget<{ actions: Action[] }> = {
  name: 'wayland-connection',
  codec: 'wayland',
  description:
    'the Wayland session on generated conversations: every message relayed with exactly its fds, hidden globals dropped, binds to them refused',
  sources: ['mediators/wayland-connection.ts', 'mediators/wayland-framer.ts', 'protocols/wayland/wire.ts'],
  ciRuns: 8000,
  minBehaviours: 8,
  arbitrary() {
    // Mostly globals, binds, requests and events; odd bytes (kind 5) rarely, so most conversations are valid.
    const kind = fc.oneof(
      { weight: 40, arbitrary: fc.constantFrom(0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 6, 6) },
      { weight: 1, arbitrary: fc.constantFrom(5, 7) },
    );
    const action = fc.record({
      kind,
      a: fc.nat({ max: 1000 }),
      b: fc.nat({ max: 1000 }),
      cut: fc.nat({ max: 64 }),
    });
    return fc.record({ actions: fc.array(action, { minLength: 4, maxLength: 40, size: 'large' }) });
  },
  check({ actions }) {
    const steps = compile(actions);
    const session = new WaylandConnection({ visible, log: quiet, refused: () => {} });
    const out = {
      client: [] as { data: Buffer; fds: number[]; at: number }[],
      server: [] as { data: Buffer; fds: number[]; at: number }[],
    };
    const sent = { client: 0, server: 0 };
    const handed: number[] = [];
    /** Where each fd's message starts in its direction's expected output. */
    const fdMessageStart = new Map<number, number>();
    const expected = { client: [] as Buffer[], server: [] as Buffer[] };
    let outcome = 'relayed';
    let replies = 0;
    try {
      for (const s of steps) {
        const side = s.fromClient ? 'client' : 'server';
        const fds = openFds(s.fdCount);
        handed.push(...fds);
        const start = expected[side].reduce((n, b) => n + b.length, 0);
        for (const fd of fds) fdMessageStart.set(fd, start);
        if (!s.dropped && !s.truncated) expected[side].push(s.data);
        const sink = {
          forward: (data: Buffer, forwarded?: number[]) => {
            out[side].push({ data: Buffer.from(data), fds: forwarded ?? [], at: sent[side] });
            sent[side] += data.length;
          },
          reply: () => {
            replies++;
          },
        };
        const framer = s.fromClient ? session.toProvider : session.toConsumer;
        if (s.truncated) {
          framer.push({ data: s.data.subarray(0, Math.max(1, s.data.length - 4)), fds }, sink);
          break;
        }
        const cut = s.cut % (s.data.length + 1);
        framer.push({ data: s.data.subarray(0, cut), fds }, sink);
        framer.push({ data: s.data.subarray(cut), fds: [] }, sink);
      }
      // Both sides end their streams: nothing may be left half-received.
      session.toProvider.end();
      session.toConsumer.end();
    } catch (error) {
      if (!(error instanceof RelayRejection)) throw error;
      outcome = 'refused';
    }
    // The relay disposes of both directions' filters when the connection is over, however it ended.
    session.toProvider.dispose();
    session.toConsumer.dispose();
    const forwardedFds = [...out.client, ...out.server].flatMap((w) => w.fds);
    const problem = checkFdsAccountedFor(handed, forwardedFds);
    if (problem) disagree(`wayland-connection: ${problem}`, { actions });
    for (const side of ['client', 'server'] as const) {
      const got = Buffer.concat(out[side].map((w) => w.data));
      const want = Buffer.concat(expected[side]);
      if (!want.subarray(0, got.length).equals(got))
        disagree(`wayland-connection: ${side} bytes are not the conversation's`, { actions });
      if (outcome === 'relayed' && !got.equals(want))
        disagree(`wayland-connection: ${side} messages held back`, { actions });
      let last = -1;
      for (const write of out[side]) {
        if (write.fds.length > MAX_FDS_PER_WAYLAND_READ)
          disagree('more than 28 fds in one write', { actions });
        for (const fd of write.fds) {
          if (fd < last) disagree('fds out of order', { actions });
          last = fd;
          // An fd goes with its message's bytes or earlier ones, never later.
          if ((fdMessageStart.get(fd) ?? -1) < write.at)
            disagree('an fd was sent after its message', { actions });
        }
      }
    }
    const invalid = steps.some((s) => s.garbage || s.hiddenBind || s.truncated);
    if (outcome === 'refused' && !invalid)
      disagree('wayland-connection refused a valid conversation', { actions });
    if (steps.some((s) => s.hiddenBind) && outcome !== 'refused')
      disagree('a bind to a hidden global went through', { actions });
    if (replies > 0 && !steps.some((s) => s.hiddenBind))
      disagree('the session answered a client that bound nothing hidden', { actions });
    return `${outcome}:${steps.some((s) => s.fdCount > 0) ? 'fds' : 'no-fds'}:${steps.some((s) => s.dropped) ? 'hidden' : 'all-shown'}`;
  },
};
