// Builds the xconnect-graph (docs/architecture.md) from the containers' manifests and their init pids, with
// upstream's semantics. Pure: no I/O.
//
// - one link per requirement entry that has a matching export: every entry of a requirement array is kept, so
//   two entries for one service (say two roles at two targets) give two links;
// - matched by service name; the type and the socket come from the export; role defaults to `any`, interface to
//   the type, target to the type's default path;
// - a required service nobody exports is an error in upstream's words; an optional one just gives no link.

import {
  defaultTarget,
  type LinkType,
  type GraphEntry as WireEntry,
} from '../../protocols/graph/xconnect-graph.js';
import type { RunManifest, ServiceExport, ServiceRequirement } from './manifests.js';

/** One container ("platform" in upstream's words) as the graph builder sees it. */
export interface PlatformServices {
  name: string;
  exports: ServiceExport[];
  run: Pick<RunManifest, 'required' | 'optional'>;
}

/** A link object exactly as `GET /xconnect-graph` serves it, every field filled in. */
export type GraphEntry = Required<Omit<WireEntry, 'uid' | 'target' | 'type'>> & {
  type: LinkType;
  target: string;
};

export interface BuiltGraph {
  links: GraphEntry[];
  /** Missing required providers: the stack cannot run as declared. */
  errors: string[];
  /** Declared but harmless: a requirement whose type differs from the export's, a service exported twice. */
  warnings: string[];
}

/** Pid of a container that was never started. */
export const NEVER_STARTED = -1;

export function missingRequiredMessage(service: string, platform: string): string {
  return `required service '${service}' for platform '${platform}' not found`;
}

/**
 * @param pids init pid per container name: absent → never started (-1); a stopped container keeps its last pid,
 *   as upstream's pv-ctrl reports it.
 */
export function buildGraph(
  platforms: readonly PlatformServices[],
  pids: ReadonlyMap<string, number> = new Map(),
): BuiltGraph {
  const links: GraphEntry[] = [];
  const errors: string[] = [];
  const warnings: string[] = [];
  const providers = indexExports(platforms, warnings);

  for (const consumer of platforms) {
    const entries: Array<[ServiceRequirement, boolean]> = [
      ...consumer.run.required.map((requirement): [ServiceRequirement, boolean] => [requirement, true]),
      ...consumer.run.optional.map((requirement): [ServiceRequirement, boolean] => [requirement, false]),
    ];
    for (const [requirement, required] of entries) {
      const match = providers.get(requirement.name);
      if (!match) {
        if (required) errors.push(missingRequiredMessage(requirement.name, consumer.name));
        continue;
      }
      const { provider, service } = match;
      if (requirement.type !== null && requirement.type !== service.type) {
        warnings.push(
          `platform '${consumer.name}' requires '${requirement.name}' as type '${requirement.type}' but ` +
            `'${provider}' exports it as '${service.type}': using '${service.type}'`,
        );
      }
      links.push({
        consumer: consumer.name,
        consumer_pid: pids.get(consumer.name) ?? NEVER_STARTED,
        provider,
        provider_pid: pids.get(provider) ?? NEVER_STARTED,
        name: requirement.name,
        type: service.type,
        role: requirement.role,
        interface: requirement.interface ?? service.type,
        target: requirement.target ?? defaultTarget(service.type, requirement.name, service.socket),
        socket: service.socket,
      });
    }
  }
  return { links, errors, warnings };
}

interface ExportMatch {
  provider: string;
  service: ServiceExport;
}

/** Service name → its provider; the first platform (in the order given) wins a name exported twice. */
function indexExports(platforms: readonly PlatformServices[], warnings: string[]): Map<string, ExportMatch> {
  const index = new Map<string, ExportMatch>();
  for (const platform of platforms) {
    for (const service of platform.exports) {
      const existing = index.get(service.name);
      if (existing) {
        warnings.push(
          `service '${service.name}' is exported by '${existing.provider}' and '${platform.name}': ` +
            `using '${existing.provider}'`,
        );
        continue;
      }
      index.set(service.name, { provider: platform.name, service });
    }
  }
  return index;
}
