// The shape of a Wayland protocol as the scanner reads it from XML and as the generated tables spell it out.
// The generated `*.generated.ts` files hold `as const` objects of these types, so the argument names and types of
// every message are known to the type checker (see `MessageArgs` in wire.ts).

export type ArgType = 'int' | 'uint' | 'fixed' | 'string' | 'object' | 'new_id' | 'array' | 'fd';

export const ARG_TYPES: readonly ArgType[] = [
  'int',
  'uint',
  'fixed',
  'string',
  'object',
  'new_id',
  'array',
  'fd',
];

export interface ArgSpec {
  readonly name: string;
  readonly type: ArgType;
  /** The interface of an `object` or `new_id`; absent for an untyped new_id (wl_registry.bind) or any object. */
  readonly interface?: string;
  /** `allow-null="true"`: a string, array, object or new_id that may be null (0 on the wire). */
  readonly nullable?: boolean;
  /** The enum that gives this int/uint its meaning, as written (`wl_shm.format` or a local name). */
  readonly enum?: string;
}

export interface MessageSpec {
  readonly name: string;
  readonly opcode: number;
  /** The interface version that introduced the message. */
  readonly since: number;
  /** `type="destructor"`: the object is gone once this message was sent. */
  readonly destructor?: boolean;
  readonly args: readonly ArgSpec[];
}

export interface EnumSpec {
  readonly name: string;
  readonly bitfield?: boolean;
  readonly entries: Readonly<Record<string, number>>;
}

export interface InterfaceSpec {
  readonly name: string;
  readonly version: number;
  readonly requests: readonly MessageSpec[];
  readonly events: readonly MessageSpec[];
  readonly enums: readonly EnumSpec[];
}

export interface ProtocolSpec {
  readonly name: string;
  /** The XML file it was generated from, relative to its search root (e.g. `stable/xdg-shell/xdg-shell.xml`). */
  readonly source: string;
  readonly interfaces: readonly InterfaceSpec[];
}
