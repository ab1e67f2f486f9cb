// Every interface of the generated protocols by name: what the mediator and the test tools look messages up in.
import { protocols } from './generated/index.generated.js';
import type { InterfaceSpec } from './spec.js';

export const knownInterfaces: ReadonlyMap<string, InterfaceSpec> = new Map(
  protocols.flatMap((protocol) => protocol.interfaces.map((iface) => [iface.name, iface] as const)),
);
