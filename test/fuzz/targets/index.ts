// Every fuzz target, in the order `npm run fuzz -- all` and CI run them.
import type { FuzzTarget, Json } from '../target.js';
import { messageTarget, namesTarget, saslTarget, signatureTarget } from './dbus.js';
import { allowTarget, graphTarget, manifestsTarget } from './graph.js';
import { chunkLineTarget, llhttpTarget, requestHeadTarget, responseTarget } from './http.js';
import { dbusFilterTarget, dbusGateTarget, restSessionTarget } from './mediators.js';
import { fdQueueTarget, wireTarget } from './wayland.js';
import { waylandSessionTarget } from './wayland-session.js';

export const targets: readonly FuzzTarget<Json>[] = [
  namesTarget,
  signatureTarget,
  saslTarget,
  messageTarget,
  dbusFilterTarget,
  dbusGateTarget,
  requestHeadTarget,
  chunkLineTarget,
  llhttpTarget,
  responseTarget,
  restSessionTarget,
  wireTarget,
  fdQueueTarget,
  waylandSessionTarget,
  graphTarget,
  manifestsTarget,
  allowTarget,
] as unknown as FuzzTarget<Json>[];

export function targetNamed(name: string): FuzzTarget<Json> | undefined {
  return targets.find((target) => target.name === name);
}
