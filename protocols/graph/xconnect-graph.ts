// The xconnect-graph served by pv-ctrl (docs/architecture.md, "The graph"): JSON text in, validated link specs out.
// Pure: no I/O. Entries that are not usable links are skipped with a warning; a body that is not a JSON array
// is an error, so the caller keeps the last good graph.

/** The name that stands for the host itself on either end of a link. */
export const HOST = '_pv_';

/** Link types the daemon knows; other types are skipped with a warning. */
export const LINK_TYPES = ['unix', 'rest', 'dbus', 'drm', 'wayland'] as const;
export type LinkType = (typeof LINK_TYPES)[number];

/** A link object as pv-ctrl serves it (docs/architecture.md); absent optional fields take their defaults. */
export interface GraphEntry {
  consumer: string;
  consumer_pid: number;
  provider: string;
  provider_pid: number;
  name: string;
  type: string;
  role?: string;
  interface?: string;
  target?: string | null;
  socket: string;
  uid?: number;
  /** The provider service's access policy (protocols/graph/allow.ts), copied from its services.json entry. */
  allow?: unknown;
  /** Who the daemon is when it dials the provider of a unix or rest link: `root` (default) or `role`. */
  credentials?: string;
}

export interface LinkSpec {
  consumer: string;
  /** init pid of the consumer: -1 never started, 0 unknown (or the host with `_pv_`). */
  consumerPid: number;
  provider: string;
  providerPid: number;
  name: string;
  type: LinkType;
  role: string;
  interface: string;
  /** Path inside the consumer, defaults resolved. */
  target: string;
  /** Path of the real socket or device inside the provider. */
  socket: string;
  /** Resolved uid for host-side D-Bus links. */
  uid: number | null;
  /**
   * The provider's `allow` list as the graph carries it, validated when the link comes up (a malformed one fails
   * only its link); undefined: the graph has none (the provider's own policy file may).
   */
  allow: unknown;
  /** Identity of the provider dial for unix and rest links (see DIAL_IDENTITIES). */
  credentials: DialIdentity;
}

/**
 * Who the daemon is when it dials the provider of a unix or rest link: `root` (the default: providers written for
 * upstream, which always dials as root, keep working) or `role` (the role's uid, gid and groups from the
 * provider's own /etc/passwd and /etc/group, as D-Bus links always do).
 */
export const DIAL_IDENTITIES = ['root', 'role'] as const;
export type DialIdentity = (typeof DIAL_IDENTITIES)[number];

export interface ParsedGraph {
  links: LinkSpec[];
  warnings: string[];
}

export class GraphError extends Error {
  override name = 'GraphError';
}

/** The identity of a link: anything else that differs is a change of spec. */
export function linkKey(link: Pick<LinkSpec, 'consumer' | 'name' | 'target'>): string {
  return JSON.stringify([link.consumer, link.name, link.target]);
}

/** Everything but the key, in a stable order: equal hashes mean nothing to do. */
export function specHash(link: LinkSpec): string {
  return JSON.stringify([
    link.consumerPid,
    link.provider,
    link.providerPid,
    link.type,
    link.role,
    link.interface,
    link.socket,
    link.uid,
    link.allow === undefined ? null : JSON.stringify(link.allow),
    link.credentials,
  ]);
}

export function defaultTarget(type: LinkType, name: string, socket: string): string {
  return type === 'drm' ? socket : `/run/pv/services/${name}.sock`;
}

/** An absolute, normalized path without NUL: the only kind a link may name inside a container. */
export function checkContainerPath(path: string): string | null {
  if (!path.startsWith('/')) return 'must be an absolute path';
  if (path.includes('\0')) return 'must not contain NUL';
  if (path.split('/').some((part) => part === '..' || part === '.')) return "must not contain '.' or '..'";
  if (path.length > 4096) return 'is too long';
  return null;
}

export function parseGraph(text: string): ParsedGraph {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (error) {
    throw new GraphError(`graph is not valid JSON: ${(error as Error).message}`);
  }
  if (!Array.isArray(body)) throw new GraphError(`graph is not a JSON array (got ${describe(body)})`);

  const links: LinkSpec[] = [];
  const warnings: string[] = [];
  const seen = new Set<string>();
  body.forEach((entry, index) => {
    const result = parseLink(entry);
    if (typeof result === 'string') {
      warnings.push(`graph[${index}] skipped: ${result}`);
      return;
    }
    const key = linkKey(result);
    if (seen.has(key)) {
      warnings.push(
        `graph[${index}] skipped: duplicate of consumer '${result.consumer}' name '${result.name}'`,
      );
      return;
    }
    seen.add(key);
    links.push(result);
  });
  return { links, warnings };
}

/** A link spec, or the reason the entry is unusable. */
function parseLink(entry: unknown): LinkSpec | string {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
    return `not a link object (${describe(entry)})`;
  }
  const field = entry as Record<string, unknown>;
  const consumer = field.consumer;
  const name = field.name;
  const socket = field.socket;
  if (typeof consumer !== 'string' || consumer === '') return 'consumer: must be a non-empty string';
  if (typeof name !== 'string' || name === '') return 'name: must be a non-empty string';
  if (name.includes('/') || name.includes('\0') || name.startsWith('.')) {
    return `name '${name}': must not contain '/' or NUL or start with '.'`;
  }
  if (typeof socket !== 'string') return 'socket: must be a string';
  const socketProblem = checkContainerPath(socket);
  if (socketProblem) return `socket '${socket}': ${socketProblem}`;

  const type = field.type;
  if (typeof type !== 'string') return 'type: must be a string';
  if (!(LINK_TYPES as readonly string[]).includes(type)) return `type '${type}': unknown link type`;
  const linkType = type as LinkType;

  // No default: a missing provider must not silently become the host.
  const provider = field.provider;
  if (typeof provider !== 'string' || provider === '') return 'provider: must be a non-empty string';
  const role = field.role ?? 'any';
  if (typeof role !== 'string' || role === '') return 'role: must be a non-empty string';
  const iface = field.interface ?? linkType;
  if (typeof iface !== 'string') return 'interface: must be a string';

  const target = field.target ?? defaultTarget(linkType, name, socket);
  if (typeof target !== 'string') return 'target: must be a string or null';
  const targetProblem = checkContainerPath(target);
  if (targetProblem) return `target '${target}': ${targetProblem}`;

  const consumerPid = optionalInt(field.consumer_pid, 0);
  if (consumerPid === null) return 'consumer_pid: must be an integer';
  const providerPid = optionalInt(field.provider_pid, 0);
  if (providerPid === null) return 'provider_pid: must be an integer';
  let uid: number | null = null;
  if (field.uid !== undefined && field.uid !== null) {
    uid = optionalInt(field.uid, -1);
    if (uid === null || uid < 0 || uid > 0xfffffffe) return 'uid: must be an integer uid';
  }

  const credentials = field.credentials ?? 'root';
  if (typeof credentials !== 'string' || !(DIAL_IDENTITIES as readonly string[]).includes(credentials)) {
    return `credentials: must be one of ${DIAL_IDENTITIES.join(', ')}`;
  }
  if (credentials === 'role' && linkType !== 'unix' && linkType !== 'rest') {
    return `credentials: 'role' applies to unix and rest links, not ${linkType}`;
  }

  return {
    consumer,
    consumerPid,
    provider,
    providerPid,
    name,
    type: linkType,
    role,
    interface: iface,
    target,
    socket,
    uid,
    allow: field.allow === null ? undefined : field.allow,
    credentials: credentials as DialIdentity,
  };
}

function optionalInt(value: unknown, fallback: number): number | null {
  if (value === undefined || value === null) return fallback;
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : null;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}
