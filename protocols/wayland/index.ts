// The Wayland codec: protocol specs scanned from XML, the generated tables, and the wire format.
export { protocols, skipped } from './generated/index.generated.js';
export { knownInterfaces } from './interfaces.js';
export type { ArgSpec, ArgType, EnumSpec, InterfaceSpec, MessageSpec, ProtocolSpec } from './spec.js';
export * from './wire.js';
