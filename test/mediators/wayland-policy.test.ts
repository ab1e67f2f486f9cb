// The role policy: the built-in default, the JSON format, its mistakes, and how the mediator finds it.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LinkContext } from '../../mediators/types.js';
import { POLICY_ENV, waylandMediator } from '../../mediators/wayland.js';
import {
  ADMIN_ROLE,
  DEFAULT_POLICY,
  PRIVILEGED_GLOBALS,
  parsePolicy,
  visibilityFor,
} from '../../mediators/wayland-policy.js';

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
  const linkWithRole = (role: string) => ({ spec: { role } }) as unknown as LinkContext;
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pvx-wayland-policy-'));
  });
  afterEach(() => {
    delete process.env[POLICY_ENV];
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads the policy named by PVX_WAYLAND_POLICY when a link is added, else uses the default', async () => {
    expect((await waylandMediator.add(linkWithRole('any'))).visible('weston_screenshooter')).toBe(false);
    const path = join(dir, 'policy.json');
    writeFileSync(path, JSON.stringify({ default: 'open', roles: { open: {} } }));
    process.env[POLICY_ENV] = path;
    expect((await waylandMediator.add(linkWithRole('any'))).visible('weston_screenshooter')).toBe(true);
  });

  it('fails the link with the file and the reason when the policy is unusable', async () => {
    const path = join(dir, 'policy.json');
    writeFileSync(path, '{"roles": {}}');
    process.env[POLICY_ENV] = path;
    await expect(waylandMediator.add(linkWithRole('any'))).rejects.toThrow(
      `PVX_WAYLAND_POLICY=${path}: 'default' must name a role`,
    );
    process.env[POLICY_ENV] = join(dir, 'missing.json');
    await expect(waylandMediator.add(linkWithRole('any'))).rejects.toThrow(
      `${join(dir, 'missing.json')}: ENOENT`,
    );
  });
});
