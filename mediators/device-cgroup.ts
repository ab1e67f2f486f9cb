// Device cgroup rules for planted device nodes. On cgroup v1 a container's `devices` controller denies nodes its
// runtime did not allow, so a node we plant needs an allow rule for exactly its numbers; on cgroup v2 device
// access is an eBPF program owned by the runtime, which we do not touch.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface CgroupGrant {
  dir: string;
  rule: string;
}

export interface GrantResult {
  /** null when nothing was written (already allowed, or cgroup v2). */
  grant: CgroupGrant | null;
  note: string | null;
}

interface DeviceRule {
  type: string;
  major: string;
  minor: string;
  access: string;
}

function parseDevicesList(text: string): DeviceRule[] {
  return text
    .split('\n')
    .map((line) => /^([acb]) (\*|\d+):(\*|\d+) ([rwm]+)$/.exec(line.trim()))
    .filter((match): match is RegExpExecArray => match !== null)
    .map(([, type = '', major = '', minor = '', access = '']) => ({ type, major, minor, access }));
}

/** Whether the rules already let a process read and write the character device major:minor. */
export function allowsCharDevice(listText: string, major: number, minor: number): boolean {
  return parseDevicesList(listText).some(
    (rule) =>
      (rule.type === 'a' || rule.type === 'c') &&
      (rule.major === '*' || rule.major === String(major)) &&
      (rule.minor === '*' || rule.minor === String(minor)) &&
      rule.access.includes('r') &&
      rule.access.includes('w'),
  );
}

export class DeviceCgroups {
  /** Rules we wrote, counted: two links may grant the same node to the same container. */
  private readonly granted = new Map<string, number>();

  constructor(private readonly root = '/sys/fs/cgroup') {}

  /** `membership`: the container's /proc/<pid>/cgroup, read through its pinned namespace (Namespace.readProcessFile). */
  async grant(membership: string, major: number, minor: number): Promise<GrantResult> {
    const v1 = membership
      .split('\n')
      .map((line) => line.split(':'))
      .find(([, controllers]) => controllers?.split(',').includes('devices'));
    if (!v1) {
      return {
        grant: null,
        note: 'cgroup v2: device permission must come from the container runtime',
      };
    }
    const dir = join(this.root, 'devices', v1.slice(2).join(':'));
    const rule = `c ${major}:${minor} rw`;
    const key = `${dir}|${rule}`;
    const count = this.granted.get(key);
    if (count !== undefined) {
      this.granted.set(key, count + 1);
      return { grant: { dir, rule }, note: null };
    }
    if (allowsCharDevice(await readFile(join(dir, 'devices.list'), 'utf8'), major, minor)) {
      return { grant: null, note: null };
    }
    await writeFile(join(dir, 'devices.allow'), rule);
    this.granted.set(key, 1);
    return { grant: { dir, rule }, note: null };
  }

  async revoke({ dir, rule }: CgroupGrant): Promise<void> {
    const key = `${dir}|${rule}`;
    const count = this.granted.get(key) ?? 0;
    if (count > 1) {
      this.granted.set(key, count - 1);
      return;
    }
    this.granted.delete(key);
    // The container may be gone with its cgroup: nothing left to revoke then.
    await writeFile(join(dir, 'devices.deny'), rule).catch(() => {});
  }
}
