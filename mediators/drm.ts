// drm: the provider's DRM device node recreated in the consumer, by role: `render` gets only render nodes,
// `master` only card (primary) nodes. The node is never opened here. On cgroup v1 the consumer's device cgroup
// gets an allow rule for exactly that node, revoked when the link goes.
import { basename } from 'node:path';
import { groupByName, parseGroup } from '../protocols/etc/accounts.js';
import { type CgroupGrant, DeviceCgroups } from './device-cgroup.js';
import { readAccountFile } from './namespace-files.js';
import { type LinkContext, type Mediator, TerminalLinkError } from './types.js';

export const DRM_MAJOR = 226;
export type DrmNodeKind = 'card' | 'render';

export interface DrmOptions {
  /** Majors accepted besides DRM's, for stand-in devices in tests (PVX_DRM_EXTRA_MAJORS). */
  extraMajors: readonly number[];
  /** Whether to manage device cgroup rules (PVX_DRM_DEVICE_CGROUP=off disables it). */
  manageCgroup: boolean;
  cgroups?: DeviceCgroups;
}

export const DEFAULT_DRM_OPTIONS: DrmOptions = { extraMajors: [], manageCgroup: true };

interface DrmState {
  ino: number;
  major: number;
  minor: number;
  grant: CgroupGrant | null;
}

/** The node kind from the device itself: DRM minors first, the name only for stand-in majors. */
export function drmNodeKind(path: string, major: number, minor: number): DrmNodeKind | null {
  if (major === DRM_MAJOR) {
    if (minor < 128) return 'card';
    return minor < 192 ? 'render' : null;
  }
  const name = basename(path);
  if (/^card\d+$/.test(name)) return 'card';
  if (/^renderD\d+$/.test(name)) return 'render';
  return null;
}

const ROLE_NEEDS: Record<string, DrmNodeKind> = { render: 'render', master: 'card' };
const GROUP_FOR: Record<DrmNodeKind, string> = { render: 'render', card: 'video' };
const CGROUP_FILE_MAX = 64 * 1024;

export function drmMediator(options: DrmOptions): Mediator<DrmState> {
  const cgroups = options.cgroups ?? new DeviceCgroups();

  /** The provider's node, checked: a character device of an accepted major, of the kind the role needs. */
  async function providerNode(link: LinkContext) {
    const { socket, role } = link.spec;
    const node = await link.provider.stat(socket);
    if (node.type !== 'char')
      throw new Error(`provider node ${socket} is a ${node.type}, not a character device`);
    if (node.rdevMajor !== DRM_MAJOR && !options.extraMajors.includes(node.rdevMajor)) {
      throw new Error(`provider node ${socket} has major ${node.rdevMajor}, not DRM's ${DRM_MAJOR}`);
    }
    const kind = drmNodeKind(socket, node.rdevMajor, node.rdevMinor);
    if (!kind)
      throw new Error(
        `provider node ${socket} (${node.rdevMajor}:${node.rdevMinor}) is neither card nor render`,
      );
    const needed = ROLE_NEEDS[role];
    if (needed && kind !== needed) {
      throw new TerminalLinkError(
        `role '${role}' may only get a ${needed} node; ${socket} is a ${kind} node`,
      );
    }
    return { ...node, kind };
  }

  /** The consumer's `render` or `video` group when it has one, else the provider node's group. */
  async function nodeGroup(link: LinkContext, kind: DrmNodeKind, fallback: number): Promise<number> {
    const text = await readAccountFile(link.consumer, '/etc/group', 'consumer');
    return groupByName(parseGroup(text), GROUP_FOR[kind])?.gid ?? fallback;
  }

  return {
    type: 'drm',

    async add(link) {
      const node = await providerNode(link);
      const gid = await nodeGroup(link, node.kind, node.gid);
      const { ino } = await link.consumer.mknod({
        path: link.spec.target,
        mode: node.mode,
        major: node.rdevMajor,
        minor: node.rdevMinor,
        uid: node.uid,
        gid,
      });
      let grant: CgroupGrant | null = null;
      if (options.manageCgroup && link.consumer.pid !== 0) {
        try {
          const membership = await link.consumer.readProcessFile('cgroup', CGROUP_FILE_MAX);
          const result = await cgroups.grant(membership, node.rdevMajor, node.rdevMinor);
          grant = result.grant;
          link.note(result.note);
        } catch (error) {
          await link.consumer.unlink(link.spec.target, ino);
          throw error;
        }
      }
      return { ino, major: node.rdevMajor, minor: node.rdevMinor, grant };
    },

    // Permission goes first: once the node is gone, so is the rule.
    async remove(link, state) {
      if (state.grant) await cgroups.revoke(state.grant);
      await link.consumer.unlink(link.spec.target, state.ino).catch(() => false);
    },

    // Hot-plug: the provider's node may disappear or change numbers, and ours may be removed under us.
    async check(link, state) {
      const node = await link.provider.stat(link.spec.socket).catch(() => null);
      if (node?.type !== 'char' || node.rdevMajor !== state.major || node.rdevMinor !== state.minor)
        return false;
      const ours = await link.consumer.stat(link.spec.target).catch(() => null);
      return ours?.ino === state.ino;
    },
  };
}
