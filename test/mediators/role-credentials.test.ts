// Role → uid, gid and groups (D-Bus links, and unix and rest links that dial as the role), from the provider's passwd
// and group (read through its namespace).
import { describe, expect, it } from 'vitest';
import { linkCredentials, NOBODY, resolveRole } from '../../mediators/role-credentials.js';
import type { LinkContext } from '../../mediators/types.js';
import { parseGroup, parsePasswd } from '../../protocols/etc/accounts.js';
import type { LinkSpec } from '../../protocols/graph/xconnect-graph.js';

const PASSWD = `root:x:0:0:root:/root:/bin/sh
# a comment
operator:x:1001:1001::/home/operator:/bin/sh
numeric:x:1002:1500::/:/bin/sh
broken:x:notanumber:1:::
nobody:x:65534:65533:nobody:/nonexistent:/usr/sbin/nologin
`;
const GROUP = `root:x:0:
operator:x:1001:
admins:x:3000:root,operator
video:x:44:operator
nogroup:x:65533:
`;

const passwd = parsePasswd(PASSWD);
const groups = parseGroup(GROUP);

describe('resolveRole', () => {
  it.each([
    ['root', { uid: 0, gid: 0, groups: [0, 3000] }],
    ['operator', { uid: 1001, gid: 1001, groups: [1001, 3000, 44] }],
    ['1002', { uid: 1002, gid: 1500, groups: [1500] }],
    ['0', { uid: 0, gid: 0, groups: [0, 3000] }],
    // A numeric uid the provider does not know: nobody's group, no others.
    ['4242', { uid: 4242, gid: 65533, groups: [65533] }],
    // Names that are no user of the provider (the host may well have them) are nobody.
    ['any', { uid: NOBODY, gid: 65533, groups: [65533] }],
    ['daemon', { uid: NOBODY, gid: 65533, groups: [65533] }],
    ['broken', { uid: NOBODY, gid: 65533, groups: [65533] }],
    ['', { uid: NOBODY, gid: 65533, groups: [65533] }],
    // (uid_t)-1 is not a uid: taken as a name, which nobody has.
    ['4294967295', { uid: NOBODY, gid: 65533, groups: [65533] }],
  ])('role %j', (role, credentials) => {
    expect(resolveRole(role, passwd, groups)).toEqual(credentials);
  });

  it('is nobody with gid 65534 when the provider has no nobody', () => {
    expect(resolveRole('any', parsePasswd('root:x:0:0::/:/bin/sh\n'), [])).toEqual({
      uid: NOBODY,
      gid: NOBODY,
      groups: [NOBODY],
    });
  });

  it("takes a host-side link's uid from the graph over its role", () => {
    expect(resolveRole('operator', passwd, groups, 1002)).toEqual({ uid: 1002, gid: 1500, groups: [1500] });
  });
});

/** A link context with only what linkCredentials reads: the spec and the provider's files. */
function context(
  spec: Partial<LinkSpec>,
  files: Record<string, string | NodeJS.ErrnoException>,
): LinkContext {
  const provider = {
    async readFile(path: string): Promise<Buffer> {
      const file = files[path] ?? Object.assign(new Error(`no ${path}`), { code: 'ENOENT' });
      if (file instanceof Error) throw file;
      return Buffer.from(file);
    },
  };
  return {
    spec: { role: 'operator', provider: 'svc', uid: null, ...spec },
    provider,
  } as unknown as LinkContext;
}

describe('linkCredentials', () => {
  it("reads the provider's passwd and group", async () => {
    const link = context({}, { '/etc/passwd': PASSWD, '/etc/group': GROUP });
    expect(await linkCredentials(link)).toEqual({ uid: 1001, gid: 1001, groups: [1001, 3000, 44] });
  });

  it('without /etc/group, the user has only its primary group', async () => {
    expect(await linkCredentials(context({}, { '/etc/passwd': PASSWD }))).toEqual({
      uid: 1001,
      gid: 1001,
      groups: [1001],
    });
  });

  it('fails the link clearly when the passwd cannot be read', async () => {
    const denied = Object.assign(new Error('denied'), { code: 'EACCES' });
    await expect(linkCredentials(context({}, { '/etc/group': GROUP }))).rejects.toThrow(
      "cannot read the provider's /etc/passwd: ENOENT",
    );
    await expect(linkCredentials(context({}, { '/etc/passwd': denied }))).rejects.toThrow(
      "cannot read the provider's /etc/passwd: EACCES",
    );
    const tooBig = Object.assign(new Error('too big'), { code: 'EFBIG' });
    await expect(
      linkCredentials(context({}, { '/etc/passwd': PASSWD, '/etc/group': tooBig })),
    ).rejects.toThrow("cannot read the provider's /etc/group: EFBIG");
  });

  it("uses the graph's uid only for a host-side provider", async () => {
    const files = { '/etc/passwd': PASSWD, '/etc/group': GROUP };
    expect((await linkCredentials(context({ provider: '_pv_', uid: 1002 }, files))).uid).toBe(1002);
    expect((await linkCredentials(context({ provider: '_pv_', uid: null }, files))).uid).toBe(1001);
    expect((await linkCredentials(context({ provider: 'svc', uid: 1002 }, files))).uid).toBe(1001);
  });
});
