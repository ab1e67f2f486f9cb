// Every fuzz target, in the order `npm run fuzz -- all` and CI run them.
import type { FuzzTarget, Json } from '../target.js';
import { messageTarget, namesTarget, saslTarget, signatureTarget } from './dbus.js';
import { allowTarget, graphTarget, manifestsTarget } from './graph.js';
import { chunkLineTarget, llhttpTarget, requestHeadTarget, responseTarget } from './http.js';
import { dbusFilterTarget, dbusGateTarget, restConnectionTarget } from './mediators.js';
import { fdQueueTarget, wireTarget } from './wayland.js';
import { waylandConnectionTarget } from './wayland-connection.js';

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
  restConnectionTarget,
  wireTarget,
  fdQueueTarget,
  waylandConnectionTarget,
  graphTarget,
  manifestsTarget,
  allowTarget,
] as unknown as FuzzTarget<Json>[];

export function targetNamed(name: string): FuzzTarget<Json> | undefined {
  return targets.find((target) => target.name === name);
}
