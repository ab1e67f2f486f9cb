// The mediators the daemon knows, by link type. A type without one fails its links with a clear error.
import type { LinkType } from '../protocols/graph/xconnect-graph.js';
import { dbusMediator } from './dbus.js';
import { drmMediator, drmOptionsFromEnv } from './drm.js';
import { restMediator } from './rest.js';
import type { Mediator } from './types.js';
import { unixMediator } from './unix.js';
import { waylandMediator } from './wayland.js';

export type MediatorRegistry = ReadonlyMap<LinkType, Mediator>;

export function defaultMediators(env: NodeJS.ProcessEnv = process.env): MediatorRegistry {
  const mediators: Mediator[] = [
    unixMediator as Mediator,
    restMediator as Mediator,
    drmMediator(drmOptionsFromEnv(env)) as Mediator,
    dbusMediator as Mediator,
    waylandMediator as Mediator,
  ];
  return new Map(mediators.map((mediator) => [mediator.type, mediator]));
}
