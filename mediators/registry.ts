// The mediators the daemon knows, by link type, and the settings they are built with (daemon/options.ts reads them
// from the environment once). A type without a mediator fails its links with a clear error.
import type { LinkType } from '../protocols/graph/xconnect-graph.js';
import { dbusMediator } from './dbus.js';
import { DEFAULT_DRM_OPTIONS, type DrmOptions, drmMediator } from './drm.js';
import { restMediator } from './rest.js';
import type { Mediator, Namespace } from './types.js';
import { unixMediator } from './unix.js';
import { DEFAULT_WAYLAND_OPTIONS, type WaylandOptions, waylandMediator } from './wayland.js';

export type MediatorRegistry = ReadonlyMap<LinkType, Mediator>;

export interface MediatorSettings {
  drm: DrmOptions;
  wayland: WaylandOptions;
}

export const DEFAULT_MEDIATOR_SETTINGS: MediatorSettings = {
  drm: DEFAULT_DRM_OPTIONS,
  wayland: DEFAULT_WAYLAND_OPTIONS,
};

/** Every built-in mediator; `host` is the daemon's own namespace, where configuration files are read. */
export function defaultMediators(settings: MediatorSettings, host: Namespace): MediatorRegistry {
  const mediators: Mediator[] = [
    unixMediator as Mediator,
    restMediator as Mediator,
    drmMediator(settings.drm) as Mediator,
    dbusMediator as Mediator,
    waylandMediator(settings.wayland, host) as Mediator,
  ];
  return new Map(mediators.map((mediator) => [mediator.type, mediator]));
}
