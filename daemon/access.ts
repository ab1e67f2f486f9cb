// Which access policy governs a link, and what it grants the link's role (docs/architecture.md, "Role-based access
// policy"): the graph's `allow` when it carries one, else the provider's own /etc/pv-xconnect/allow.json read inside
// the provider's pinned namespace, else none. Decided each time the link comes up, before any mediator runs.
import { readTextFile } from '../mediators/namespace-files.js';
import { type Namespace, TerminalLinkError } from '../mediators/types.js';
import {
  type AllowPolicy,
  type Narrowing,
  PolicyError,
  PROVIDER_POLICY_PATH,
  parseAllow,
  parsePolicyFile,
} from '../protocols/graph/allow.js';
import type { LinkSpec } from '../protocols/graph/xconnect-graph.js';

/** A provider's policy file larger than this is refused (the link fails) rather than read. */
export const MAX_PROVIDER_POLICY_BYTES = 1 << 20;

/** The policy of the link's service, or null when there is none (every role may use the link). */
export async function policyOf(
  spec: LinkSpec,
  provider: Pick<Namespace, 'readFile'>,
): Promise<AllowPolicy | null> {
  if (spec.allow !== undefined) return parseAllow(spec.allow, spec.type, `graph entry of ${service(spec)}`);
  const where = `${PROVIDER_POLICY_PATH} of ${spec.provider}`;
  let text: string;
  try {
    text = await readTextFile(provider, PROVIDER_POLICY_PATH, MAX_PROVIDER_POLICY_BYTES, where);
  } catch (error) {
    // Absent: the provider states no policy. Unreadable is not absent: guessing "none" would open the link.
    const { code } = error as NodeJS.ErrnoException;
    if (code === 'ENOENT') return null;
    if (code === 'EFBIG') throw new PolicyError(`larger than ${MAX_PROVIDER_POLICY_BYTES} bytes`, where);
    throw error;
  }
  const services = parsePolicyFile(text, where);
  return services.has(spec.name)
    ? parseAllow(services.get(spec.name), spec.type, `${where}, service "${spec.name}"`)
    : null;
}

/**
 * What the link's role may do: null for no narrowing, else its object entries. A malformed policy or a role it
 * does not list is a TerminalLinkError: the link stays failed, with nothing planted, until its spec changes.
 */
export async function narrowingsFor(
  spec: LinkSpec,
  provider: Pick<Namespace, 'readFile'>,
): Promise<readonly Narrowing[] | null> {
  let policy: AllowPolicy | null;
  try {
    policy = await policyOf(spec, provider);
  } catch (error) {
    if (error instanceof PolicyError) throw new TerminalLinkError(error.message);
    throw error;
  }
  if (policy === null) return null;
  const grant = policy.grantFor(spec.role);
  if (grant === null) throw new TerminalLinkError(`role '${spec.role}' is not allowed by ${service(spec)}`);
  return grant.narrowings;
}

function service(spec: LinkSpec): string {
  return `${spec.provider}/${spec.name}`;
}
