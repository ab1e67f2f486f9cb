// The Wayland codec: the generated tables (made from the protocol XML by codegen/wayland/) and the wire format.
export { protocols, skipped } from './generated/index.generated.js';
export { knownInterfaces } from './interfaces.js';
export type { ArgSpec, ArgType, EnumSpec, InterfaceSpec, MessageSpec, ProtocolSpec } from './spec.js';
export * from './wire.js';
