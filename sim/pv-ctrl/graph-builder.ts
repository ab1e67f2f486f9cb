// Builds the xconnect-graph (docs/architecture.md) from the containers' manifests and their init pids, as
// upstream's pv-ctrl does (state.c, pv_state_get_xconnect_graph_json). Pure: no I/O.
//
// - one link per requirement entry and matching export (by service name): every entry of a requirement array is
//   kept, so two entries for one service (two roles at two targets) give two links; a service exported by two
//   containers gives a link to each (the daemon keeps the first of a key, in container name order);
// - the type and the socket come from the export, and so do its `allow` and `credentials` when it states them;
//   role defaults to `any`, interface to the type; the target is the requirement's, or null (the daemon's default
//   path);
// - with the hosted system bus on, a requirement of `system-bus` is a link to the host (`_pv_`, pid 0) carrying
//   the role's uid, and a container may not export that name;
// - a required service nobody exports is an error in upstream's words, prefixed with where it was required; an
//   optional one just gives no link.
import { PolicyError, parseAllow } from '../../protocols/graph/allow.js';
import { HOST, type LinkType, type GraphEntry as WireEntry } from '../../protocols/graph/xconnect-graph.js';
import {
  formatProblem,
  HOSTED_BUS,
  type HostedBusName,
  type RunManifest,
  type ServiceExport,
  type ServiceRequirement,
  type SourceRef,
} from './manifests.js';

/** One container ("platform" in upstream's words) as the graph builder sees it. */
export interface PlatformServices {
  name: string;
  exports: ServiceExport[];
  hostedNames?: HostedBusName[];
  run: Pick<RunManifest, 'required' | 'optional'>;
}

/** A link object exactly as `GET /xconnect-graph` serves it: every field filled in but `uid` (host-side links only),
 * `target` (null: the requirement names none, the daemon plants at its default path), and the provider service's
 * `allow` and `credentials` (only when its services.json entry states them). */
export type GraphEntry = Required<Omit<WireEntry, 'type' | 'target' | 'uid' | 'allow' | 'credentials'>> &
  Pick<WireEntry, 'uid' | 'allow' | 'credentials'> & {
    type: LinkType;
    target: string | null;
  };

/** The hosted system bus as the graph needs it: where its socket is on the host and each role's uid. */
export interface HostedBusGraph {
  socket: string;
  uidOf(role: string): number;
}

export interface BuiltGraph {
  links: GraphEntry[];
  /** The stack cannot run as declared (a missing required provider, a name owned twice…). */
  errors: string[];
  /** Declared but harmless: a requirement whose type differs from the export's, a service exported twice. */
  warnings: string[];
}

/** Pid of a container that was never started. */
export const NEVER_STARTED = -1;

export function missingRequiredMessage(service: string, platform: string): string {
  return `required service '${service}' for platform '${platform}' not found`;
}

const where = (at: SourceRef, message: string) => formatProblem({ ...at, message });

/**
 * @param pids init pid per container name: absent → never started (-1); a stopped container keeps its last pid,
 *   as upstream's pv-ctrl reports it.
 * @param hostedBus the hosted system bus, or null when it is off (then `system-bus` is an ordinary service).
 */
export function buildGraph(
  platforms: readonly PlatformServices[],
  pids: ReadonlyMap<string, number> = new Map(),
  hostedBus: HostedBusGraph | null = null,
): BuiltGraph {
  const links: GraphEntry[] = [];
  const errors: string[] = [];
  const warnings: string[] = [];
  const providers = indexExports(platforms, warnings);
  if (hostedBus) errors.push(...hostedBusConflicts(platforms));

  for (const consumer of platforms) {
    const entries: Array<[ServiceRequirement, boolean]> = [
      ...consumer.run.required.map((requirement): [ServiceRequirement, boolean] => [requirement, true]),
      ...consumer.run.optional.map((requirement): [ServiceRequirement, boolean] => [requirement, false]),
    ];
    const pid = pids.get(consumer.name) ?? NEVER_STARTED;
    for (const [requirement, required] of entries) {
      if (hostedBus && requirement.name === HOSTED_BUS) {
        links.push({
          consumer: consumer.name,
          consumer_pid: pid,
          provider: HOST,
          provider_pid: 0,
          name: requirement.name,
          type: 'dbus',
          role: requirement.role,
          interface: requirement.interface ?? 'dbus',
          target: requirement.target,
          socket: hostedBus.socket,
          uid: hostedBus.uidOf(requirement.role),
        });
        continue;
      }
      const matches = providers.get(requirement.name) ?? [];
      if (matches.length === 0 && required) {
        errors.push(where(requirement.at, missingRequiredMessage(requirement.name, consumer.name)));
      }
      for (const { provider, service } of matches) {
        if (requirement.type !== null && requirement.type !== service.type) {
          warnings.push(
            where(
              requirement.at,
              `requires '${requirement.name}' as type '${requirement.type}' but '${provider}' exports it as ` +
                `'${service.type}': using '${service.type}'`,
            ),
          );
        }
        links.push({
          consumer: consumer.name,
          consumer_pid: pid,
          provider,
          provider_pid: pids.get(provider) ?? NEVER_STARTED,
          name: requirement.name,
          type: service.type,
          role: requirement.role,
          interface: requirement.interface ?? service.type,
          target: requirement.target,
          socket: service.socket,
          ...(service.allow === undefined ? {} : { allow: service.allow }),
          ...(service.credentials === undefined ? {} : { credentials: service.credentials }),
        });
      }
    }
  }
  return { links, errors, warnings };
}

interface ExportMatch {
  provider: string;
  service: ServiceExport;
}

/** Service name → every export of it, in the order given (a name exported twice is warned about). */
function indexExports(
  platforms: readonly PlatformServices[],
  warnings: string[],
): Map<string, ExportMatch[]> {
  const index = new Map<string, ExportMatch[]>();
  for (const platform of platforms) {
    for (const service of platform.exports) {
      const existing = index.get(service.name) ?? [];
      if (existing.length > 0) {
        warnings.push(
          where(
            service.at,
            `service '${service.name}' is also exported by '${existing[0]?.provider}': its consumers get a link ` +
              `to each, and pv-xconnect keeps the first ('${existing[0]?.provider}')`,
          ),
        );
      }
      index.set(service.name, [...existing, { provider: platform.name, service }]);
    }
  }
  return index;
}

/** A role becomes a user name in the bus's passwd: nothing that could break a passwd line or an XML attribute. */
const ROLE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** What upstream's state validation refuses while the hosted bus is on, and roles that cannot be bus users. */
function hostedBusConflicts(platforms: readonly PlatformServices[]): string[] {
  const errors: string[] = [];
  const owners = new Map<string, string>();
  const checkRole = (role: string, at: SourceRef) => {
    if (!ROLE_NAME.test(role)) errors.push(where(at, `role '${role}' cannot name a user on the hosted bus`));
  };
  for (const platform of platforms) {
    for (const requirement of [...platform.run.required, ...platform.run.optional]) {
      if (requirement.name === HOSTED_BUS) checkRole(requirement.role, requirement.at);
    }
    for (const service of platform.exports) {
      if (service.name === HOSTED_BUS) {
        errors.push(
          where(
            service.at,
            `'${HOSTED_BUS}' is reserved for the hosted system bus (pantavisor.config turns it on)`,
          ),
        );
      }
    }
    for (const name of platform.hostedNames ?? []) {
      for (const role of [name.role, ...name.allow]) checkRole(role, name.at);
      const owner = owners.get(name.owns);
      if (owner) errors.push(where(name.at, `'${name.owns}' is already owned by '${owner}'`));
      else owners.set(name.owns, platform.name);
    }
  }
  return errors;
}

/**
 * Whether the link's own allow list lets its role use it, as the daemon decides (a malformed list lets nobody).
 * A link without one may still be refused by the provider's /etc/pv-xconnect/allow.json, which only the daemon reads.
 */
export function allowsRole(link: Pick<GraphEntry, 'allow' | 'type' | 'role'>): boolean {
  if (link.allow === undefined) return true;
  try {
    return parseAllow(link.allow, link.type, 'graph').grantFor(link.role) !== null;
  } catch (error) {
    if (error instanceof PolicyError) return false;
    throw error;
  }
}
