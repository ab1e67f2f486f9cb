// The role policy: the built-in default, the JSON format, its mistakes, and how the mediator finds it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hostNamespace } from '../../daemon/plumbing.js';
import { type LinkContext, TerminalLinkError } from '../../mediators/types.js';
import { MAX_POLICY_FILE_BYTES, POLICY_ENV, waylandMediator } from '../../mediators/wayland.js';
import {
  ADMIN_ROLE,
  DEFAULT_POLICY,
  PRIVILEGED_GLOBALS,
  parsePolicy,
  visibilityFor,
} from '../../mediators/wayland-policy.js';
import { type Narrowing, parseAllow } from '../../protocols/graph/allow.js';

describe('the default policy', () => {
  it('hides the privileged globals from any and unknown roles, and shows everything to compositor-admin', () => {
    for (const role of ['any', 'some-app']) {
      const visible = visibilityFor(DEFAULT_POLICY, role);
      for (const iface of PRIVILEGED_GLOBALS) expect(visible(iface)).toBe(false);
      for (const iface of ['wl_compositor', 'wl_shm', 'xdg_wm_base', 'wl_seat'])
        expect(visible(iface)).toBe(true);
    }
    const admin = visibilityFor(DEFAULT_POLICY, ADMIN_ROLE);
    for (const iface of [...PRIVILEGED_GLOBALS, 'wl_shm']) expect(admin(iface)).toBe(true);
  });
});

describe('a policy file', () => {
  it('allows by pattern, denies by name, prefix or group, and falls back to its default role', () => {
    const policy = parsePolicy(
      JSON.stringify({
        default: 'kiosk',
        groups: { input: ['zwp_text_input_manager_v3', 'zwp_input_method_*'] },
        roles: {
          kiosk: { allow: ['wl_*', 'xdg_wm_base'], deny: ['wl_data_device_manager'] },
          panel: { deny: ['@input', '@privileged'] },
        },
      }),
    );
    const kiosk = visibilityFor(policy, 'never-heard-of');
    expect(['wl_shm', 'xdg_wm_base'].map(kiosk)).toEqual([true, true]);
    expect(['wl_data_device_manager', 'wp_viewporter'].map(kiosk)).toEqual([false, false]);
    const panel = visibilityFor(policy, 'panel');
    expect(
      ['zwp_input_method_v1', 'zwp_text_input_manager_v3', 'weston_screenshooter', 'wp_viewporter'].map(
        panel,
      ),
    ).toEqual([false, false, false, true]);
  });

  it('is refused with a reason when it is not what the format says', () => {
    const cases: [string, RegExp][] = [
      ['[', /not JSON/],
      ['[]', /must be a JSON object/],
      ['{"roles": {}, "extra": 1}', /unknown key 'extra'/],
      ['{"roles": {"a": {"allow": "x"}}, "default": "a"}', /roles.a.allow must be an array/],
      ['{"roles": {"a": {"block": []}}, "default": "a"}', /roles.a: unknown key 'block'/],
      ['{"roles": {"a": {}}}', /'default' must name a role/],
      ['{"roles": {"a": {"deny": ["@nope"]}}, "default": "a"}', /unknown group '@nope'/],
      [
        '{"groups": {"g": ["@privileged"]}, "roles": {"a": {"deny": ["@g"]}}, "default": "a"}',
        /groups cannot contain groups/,
      ],
    ];
    for (const [text, message] of cases) expect(() => parsePolicy(text)).toThrow(message);
  });
});

describe('the mediator', () => {
  const linkWithRole = (role: string, narrowings: readonly Narrowing[] | null = null) =>
    ({ spec: { role }, narrowings }) as unknown as LinkContext;
  /** The daemon's own namespace, where it reads the policy file (through the bounded native read). */
  const host = hostNamespace();
  const withPolicy = (policyFile: string | null) => waylandMediator({ policyFile }, host);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pvx-wayland-policy-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the policy file of its settings when a link is added, else uses the default', async () => {
    expect((await withPolicy(null).add(linkWithRole('any'))).visible('weston_screenshooter')).toBe(false);
    const path = join(dir, 'policy.json');
    const mediator = withPolicy(path);
    writeFileSync(path, JSON.stringify({ default: 'open', roles: { open: {} } }));
    expect((await mediator.add(linkWithRole('any'))).visible('weston_screenshooter')).toBe(true);
    // Read again for the next link: an edited file applies to links added from then on.
    writeFileSync(path, JSON.stringify({ default: 'closed', roles: { closed: { allow: [] } } }));
    expect((await mediator.add(linkWithRole('any'))).visible('wl_compositor')).toBe(false);
  });

  it("shows exactly an allow list's globals, keeps the role filter for entries without, never reads it otherwise", async () => {
    const grant = (allow: unknown[]) =>
      parseAllow(allow, 'wayland', 'test').grantFor('any')?.narrowings ?? null;
    const listed = await withPolicy(join(dir, 'missing.json')).add(
      linkWithRole(
        'any',
        grant([
          { role: 'any', globals: ['wl_compositor', 'xdg_*'] },
          { role: 'any', globals: ['weston_screenshooter'] },
        ]),
      ),
    );
    expect(['wl_compositor', 'xdg_wm_base', 'weston_screenshooter', 'wl_seat'].map(listed.visible)).toEqual([
      true,
      true,
      true,
      false,
    ]);
    expect(listed.rule).toBe('any: globals');
    // An entry without globals does not narrow that axis: the built-in filter decides, the listed globals add to it.
    const mixed = await withPolicy(null).add(
      linkWithRole('any', grant([{ role: 'any' }, { role: 'any', globals: ['weston_screenshooter'] }])),
    );
    expect(['wl_seat', 'weston_screenshooter', 'weston_desktop_shell'].map(mixed.visible)).toEqual([
      true,
      true,
      false,
    ]);
    expect(mixed.rule).toBe('any: built-in role filter');
    // A plain role name lifts every narrowing: the role filter, as without a policy.
    const plain = await withPolicy(null).add(linkWithRole('any', grant(['any'])));
    expect(plain.visible('weston_screenshooter')).toBe(false);
  });

  it('fails the link for good when the policy is malformed or too large, naming the file and the reason', async () => {
    const path = join(dir, 'policy.json');
    writeFileSync(path, '{"roles": {}}');
    const malformed = withPolicy(path).add(linkWithRole('any'));
    await expect(malformed).rejects.toThrow(`${POLICY_ENV}=${path}: 'default' must name a role`);
    await expect(malformed).rejects.toBeInstanceOf(TerminalLinkError);
    writeFileSync(path, ' '.repeat(MAX_POLICY_FILE_BYTES + 1));
    const large = withPolicy(path).add(linkWithRole('any'));
    await expect(large).rejects.toThrow(`${POLICY_ENV}=${path}: cannot read the file: EFBIG`);
    await expect(large).rejects.toBeInstanceOf(TerminalLinkError);
  });

  it('fails the link for now when the policy file cannot be read, so it is retried', async () => {
    const path = join(dir, 'missing.json');
    const missing = withPolicy(path).add(linkWithRole('any'));
    await expect(missing).rejects.toThrow(`${POLICY_ENV}=${path}: cannot read the file: ENOENT`);
    await expect(missing).rejects.not.toBeInstanceOf(TerminalLinkError);
  });
});
