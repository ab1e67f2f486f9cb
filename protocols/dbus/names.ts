// Syntax of object paths and of bus, interface, member and error names (D-Bus specification, "Valid Names").

/** Bus, interface, member and error names are at most 255 bytes; object paths have no limit. */
export const MAX_NAME_LENGTH = 255;

// Each pattern has a separator that no element may contain, so matching is linear (no backtracking).
const INTERFACE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$/;
const MEMBER_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const WELL_KNOWN_BUS_NAME = /^[A-Za-z_-][A-Za-z0-9_-]*(?:\.[A-Za-z_-][A-Za-z0-9_-]*)+$/;
const UNIQUE_BUS_NAME = /^:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)+$/;
const OBJECT_PATH = /^\/(?:[A-Za-z0-9_]+(?:\/[A-Za-z0-9_]+)*)?$/;

export function isValidObjectPath(path: string): boolean {
  return OBJECT_PATH.test(path);
}

export function isValidInterfaceName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && INTERFACE_NAME.test(name);
}

/** Error names follow the interface-name rules. */
export function isValidErrorName(name: string): boolean {
  return isValidInterfaceName(name);
}

export function isValidMemberName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && MEMBER_NAME.test(name);
}

/** A unique name (`:1.42`, elements may start with a digit) or a well-known name (`org.example.App`). */
export function isValidBusName(name: string): boolean {
  if (name.length > MAX_NAME_LENGTH) return false;
  return name.startsWith(':') ? UNIQUE_BUS_NAME.test(name) : WELL_KNOWN_BUS_NAME.test(name);
}
