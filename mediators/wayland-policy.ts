// Which compositor globals each role may see. A policy is JSON (see docs/wayland.md):
//
//   { "default": "any",
//     "groups": { "privileged": ["zwlr_screencopy_manager_v1", ...] },
//     "roles": { "compositor-admin": { "allow": ["*"] }, "any": { "deny": ["@privileged"] } } }
//
// A role not listed under `roles` gets the rules of the `default` role. An interface is visible when it matches an
// `allow` pattern (no `allow` list = everything) and no `deny` pattern. A pattern is an interface name, a prefix
// ending in `*`, or `@group`. Built-in groups (below) can be replaced by the file's own `groups`.

export interface RoleRules {
  allow?: string[];
  deny?: string[];
}

export interface WaylandPolicy {
  default: string;
  groups: Record<string, string[]>;
  roles: Record<string, RoleRules>;
}

/** Globals that let a client watch, drive or reshape the whole session rather than its own windows. */
export const PRIVILEGED_GLOBALS: readonly string[] = [
  // screen capture
  'zwlr_screencopy_manager_v1',
  'zwlr_export_dmabuf_manager_v1',
  'ext_image_copy_capture_manager_v1',
  'ext_output_image_capture_source_manager_v1',
  'ext_foreign_toplevel_image_capture_source_manager_v1',
  'weston_screenshooter',
  'weston_capture_v1',
  // virtual input devices
  'zwp_virtual_keyboard_manager_v1',
  'zwlr_virtual_pointer_manager_v1',
  // clipboard access without focus
  'zwlr_data_control_manager_v1',
  'ext_data_control_manager_v1',
  // input methods
  'zwp_input_method_manager_v2',
  'zwp_input_method_v1',
  'zwp_input_panel_v1',
  // session lock, shell layers, other clients' windows
  'ext_session_lock_manager_v1',
  'zwlr_layer_shell_v1',
  'zwlr_foreign_toplevel_manager_v1',
  'ext_foreign_toplevel_list_v1',
  'weston_desktop_shell',
  // outputs: configuration, power, gamma, leasing
  'zwlr_output_manager_v1',
  'zwlr_output_power_manager_v1',
  'zwlr_gamma_control_manager_v1',
  'wp_drm_lease_device_v1',
  // meant for Xwayland or sandbox managers only
  'xwayland_shell_v1',
  'zwp_xwayland_keyboard_grab_manager_v1',
  'wp_security_context_manager_v1',
];

export const ADMIN_ROLE = 'compositor-admin';

export const DEFAULT_POLICY: WaylandPolicy = {
  default: 'any',
  groups: { privileged: [...PRIVILEGED_GLOBALS] },
  roles: { [ADMIN_ROLE]: { allow: ['*'] }, any: { deny: ['@privileged'] } },
};

export class PolicyError extends Error {
  override name = 'PolicyError';
}

function stringList(value: unknown, where: string): string[] {
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string' && item.length > 0))
    throw new PolicyError(`${where} must be an array of non-empty strings`);
  return value as string[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses and checks a policy document; built-in groups stay available unless the document redefines them. */
export function parsePolicy(text: string): WaylandPolicy {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw new PolicyError(`not JSON: ${(error as Error).message}`);
  }
  if (!isObject(document)) throw new PolicyError('the policy must be a JSON object');
  for (const key of Object.keys(document)) {
    if (!['default', 'groups', 'roles'].includes(key)) throw new PolicyError(`unknown key '${key}'`);
  }
  const groups: Record<string, string[]> = { ...DEFAULT_POLICY.groups };
  if (document.groups !== undefined) {
    if (!isObject(document.groups)) throw new PolicyError("'groups' must be an object");
    for (const [name, members] of Object.entries(document.groups))
      groups[name] = stringList(members, `groups.${name}`);
  }
  if (!isObject(document.roles)) throw new PolicyError("'roles' must be an object");
  const roles: Record<string, RoleRules> = {};
  for (const [role, rules] of Object.entries(document.roles)) {
    if (!isObject(rules)) throw new PolicyError(`roles.${role} must be an object`);
    for (const key of Object.keys(rules)) {
      if (key !== 'allow' && key !== 'deny') throw new PolicyError(`roles.${role}: unknown key '${key}'`);
    }
    roles[role] = {
      ...(rules.allow !== undefined ? { allow: stringList(rules.allow, `roles.${role}.allow`) } : {}),
      ...(rules.deny !== undefined ? { deny: stringList(rules.deny, `roles.${role}.deny`) } : {}),
    };
  }
  const fallback = document.default ?? 'any';
  if (typeof fallback !== 'string' || !Object.hasOwn(roles, fallback))
    throw new PolicyError(`'default' must name a role of 'roles' (got ${JSON.stringify(fallback)})`);
  const policy = { default: fallback, groups, roles };
  for (const role of Object.keys(roles)) visibilityFor(policy, role); // every @group reference resolves
  return policy;
}

/** A compiled pattern list: exact names plus prefixes (from `prefix*`). */
function matcher(patterns: readonly string[], groups: Record<string, string[]>, where: string) {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const add = (pattern: string) => {
    if (pattern.endsWith('*')) prefixes.push(pattern.slice(0, -1));
    else exact.add(pattern);
  };
  for (const pattern of patterns) {
    if (!pattern.startsWith('@')) add(pattern);
    else {
      const members = groups[pattern.slice(1)];
      if (!members) throw new PolicyError(`${where}: unknown group '${pattern}'`);
      for (const member of members) {
        if (member.startsWith('@'))
          throw new PolicyError(`${where}: groups cannot contain groups ('${member}')`);
        add(member);
      }
    }
  }
  return (name: string) => exact.has(name) || prefixes.some((prefix) => name.startsWith(prefix));
}

/** The rule a role lives by: whether a global of this interface is shown to it. */
export function visibilityFor(policy: WaylandPolicy, role: string): (iface: string) => boolean {
  const name = Object.hasOwn(policy.roles, role) ? role : policy.default;
  const rules = policy.roles[name] ?? {};
  const allowed = rules.allow ? matcher(rules.allow, policy.groups, `roles.${name}.allow`) : () => true;
  const denied = matcher(rules.deny ?? [], policy.groups, `roles.${name}.deny`);
  return (iface) => allowed(iface) && !denied(iface);
}
