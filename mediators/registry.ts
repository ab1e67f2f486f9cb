// The mediators the daemon knows, by link type, and the settings they are built with (daemon/options.ts reads them
// from the environment once). A type without a mediator fails its links with a clear error.
import type { FdSocket } from '../native/fd-socket.js';
import type { LinkType } from '../protocols/graph/xconnect-graph.js';
import { DEFAULT_DRM_OPTIONS, type DrmOptions, drmMediator } from './drm.js';
import type { LinkContext, Mediator, Namespace } from './types.js';
import { unixMediator } from './unix.js';
import type { WaylandOptions } from './wayland.js';

export type MediatorRegistry = ReadonlyMap<LinkType, Mediator>;

export interface MediatorSettings {
  drm: DrmOptions;
  wayland: WaylandOptions;
}

export const DEFAULT_MEDIATOR_SETTINGS: MediatorSettings = {
  drm: DEFAULT_DRM_OPTIONS,
  wayland: { policyFile: null },
};

interface LoadedState {
  mediator: Mediator;
  state: unknown;
}

/**
 * A mediator whose module is loaded with the first link of its type: a daemon without such links never holds its
 * protocol code (the D-Bus, HTTP and Wayland codecs cost an idle daemon about 0.4, 0.4 and 0.8 MiB of anonymous
 * memory; `npm run bench -- footprint`). A failed load fails that link and is tried again with the next.
 */
function loadedWithFirstLink(type: LinkType, load: () => Promise<Mediator>): Mediator<LoadedState> {
  let loading: Promise<Mediator> | undefined;
  return {
    type,
    async add(link: LinkContext) {
      loading ??= load().catch((error: unknown) => {
        loading = undefined;
        throw error;
      });
      const mediator = await loading;
      return { mediator, state: await mediator.add(link) };
    },
    async remove(link: LinkContext, { mediator, state }: LoadedState) {
      await mediator.remove?.(link, state);
    },
    onConnection(consumer: FdSocket, link: LinkContext, { mediator, state }: LoadedState) {
      mediator.onConnection?.(consumer, link, state);
    },
  };
}

/** Every built-in mediator; `host` is the daemon's own namespace, where configuration files are read. */
export function defaultMediators(settings: MediatorSettings, host: Namespace): MediatorRegistry {
  const mediators: Mediator[] = [
    unixMediator as Mediator,
    drmMediator(settings.drm) as Mediator,
    loadedWithFirstLink('rest', async () => (await import('./rest.js')).restMediator as Mediator),
    loadedWithFirstLink('dbus', async () => (await import('./dbus.js')).dbusMediator as Mediator),
    loadedWithFirstLink(
      'wayland',
      async () => (await import('./wayland.js')).waylandMediator(settings.wayland, host) as Mediator,
    ),
  ];
  return new Map(mediators.map((mediator) => [mediator.type, mediator]));
}
