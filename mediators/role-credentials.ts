// Who a link's connections are at the provider: the link's role turned into a uid, gid and supplementary groups,
// looked up in the provider's own /etc/passwd and /etc/group (never the host's). D-Bus links always dial as the
// role; unix and rest links do when their service says `"credentials": "role"` (else as the daemon, root).
import { type GroupEntry, type PasswdEntry, parseGroup, parsePasswd } from '../protocols/etc/accounts.js';
import { HOST } from '../protocols/graph/xconnect-graph.js';
import { readAccountFile } from './namespace-files.js';
import type { Credentials, LinkContext } from './types.js';

/** The uid (and, when it has no passwd entry, the gid) of a role that names no user of the provider. */
export const NOBODY = 65534;

/** A decimal uid as a role names it; `(uid_t)-1` is no uid. */
function numericUid(role: string): number | undefined {
  if (!/^\d{1,10}$/.test(role)) return undefined;
  const uid = Number(role);
  return uid <= 0xfffffffe ? uid : undefined;
}

/**
 * The role's credentials: a numeric role is that uid, a name is looked up in passwd, anything else is
 * nobody (65534). `hostUid` (the graph's `uid` of a host-side link) overrides the role. The gid is the
 * user's primary group (nobody's for a uid without a passwd entry); the groups are the primary gid and
 * every group that lists the user, as initgroups(3) would set them.
 */
export function resolveRole(
  role: string,
  passwd: readonly PasswdEntry[],
  groups: readonly GroupEntry[],
  hostUid: number | null = null,
): Credentials {
  const uid = hostUid ?? numericUid(role) ?? passwd.find((entry) => entry.name === role)?.uid ?? NOBODY;
  const user = passwd.find((entry) => entry.uid === uid);
  const nobody =
    passwd.find((entry) => entry.uid === NOBODY) ?? passwd.find((entry) => entry.name === 'nobody');
  const gid = user?.gid ?? nobody?.gid ?? NOBODY;
  const supplementary = user
    ? groups.filter((group) => group.members.includes(user.name)).map((group) => group.gid)
    : [];
  return { uid, gid, groups: [...new Set([gid, ...supplementary])] };
}

/** The credentials of the link's role at its provider (see resolveRole). */
export async function linkCredentials(link: Pick<LinkContext, 'spec' | 'provider'>): Promise<Credentials> {
  const { spec } = link;
  // Without passwd no role resolves; a provider without /etc/group simply has no supplementary groups.
  const [passwd, groups] = await Promise.all([
    readAccountFile(link.provider, '/etc/passwd', 'provider'),
    readAccountFile(link.provider, '/etc/group', 'provider'),
  ]);
  const hostUid = spec.provider === HOST ? spec.uid : null;
  return resolveRole(spec.role, parsePasswd(passwd), parseGroup(groups), hostUid);
}

/**
 * Who a unix or rest link dials its provider as: the role's credentials when the service asks for them
 * (`credentials: role`), else undefined, the daemon itself (root), as upstream always dials. Resolved when the link
 * comes up; a provider without a readable /etc/passwd then fails the link (retried), as a D-Bus link does.
 */
export async function dialCredentials(link: LinkContext): Promise<Credentials | undefined> {
  if (link.spec.credentials !== 'role') return undefined;
  const credentials = await linkCredentials(link);
  link.log.info('dial identity', { role: link.spec.role, ...credentials });
  return credentials;
}
