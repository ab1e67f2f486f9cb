// Reads one Wayland protocol XML document into a ProtocolSpec, checking what wayland-scanner checks that matters on
// the wire: names, argument types, interface references only where they belong, nullability only on nullable
// types, versions and `since` within range. Pure: text in, spec out; problems throw ScannerError.
import type {
  ArgSpec,
  ArgType,
  EnumSpec,
  InterfaceSpec,
  MessageSpec,
  ProtocolSpec,
} from '../../protocols/wayland/spec.js';
import { ARG_TYPES } from '../../protocols/wayland/spec.js';
import { parseXml, type XmlElement } from './xml.js';

export class ScannerError extends Error {
  override name = 'ScannerError';
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const NULLABLE_TYPES = new Set<ArgType>(['string', 'array', 'object', 'new_id']);

function fail(where: string, message: string): never {
  throw new ScannerError(`${where}: ${message}`);
}

function attribute(element: XmlElement, name: string, where: string): string {
  const value = element.attributes[name];
  if (value === undefined) fail(where, `<${element.name}> needs a '${name}' attribute`);
  return value;
}

function identifier(element: XmlElement, where: string): string {
  const name = attribute(element, 'name', where);
  if (!IDENTIFIER.test(name)) fail(where, `'${name}' is not a valid name`);
  return name;
}

function positiveInteger(text: string, what: string, where: string): number {
  if (!/^[1-9][0-9]*$/.test(text)) fail(where, `${what} '${text}' is not a positive integer`);
  const value = Number(text);
  if (value > 0xffffffff) fail(where, `${what} '${text}' is out of range`);
  return value;
}

function booleanAttribute(element: XmlElement, name: string, where: string): boolean {
  const value = element.attributes[name];
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  return fail(where, `${name}="${value}" must be "true" or "false"`);
}

function childrenNamed(element: XmlElement, name: string): XmlElement[] {
  return element.children.filter((child) => child.name === name);
}

function scanArg(element: XmlElement, where: string): ArgSpec {
  const name = identifier(element, where);
  const at = `${where} argument '${name}'`;
  const type = attribute(element, 'type', at) as ArgType;
  if (!ARG_TYPES.includes(type)) fail(at, `unknown type '${type}'`);
  const arg: { -readonly [K in keyof ArgSpec]: ArgSpec[K] } = { name, type };
  const iface = element.attributes.interface;
  if (iface !== undefined) {
    if (type !== 'object' && type !== 'new_id') fail(at, `an interface is only valid on object and new_id`);
    if (!IDENTIFIER.test(iface)) fail(at, `'${iface}' is not a valid interface name`);
    arg.interface = iface;
  }
  if (booleanAttribute(element, 'allow-null', at)) {
    if (!NULLABLE_TYPES.has(type)) fail(at, `allow-null is only valid on string, array, object and new_id`);
    arg.nullable = true;
  }
  const enumName = element.attributes.enum;
  if (enumName !== undefined) {
    if (type !== 'int' && type !== 'uint') fail(at, `an enum is only valid on int and uint`);
    arg.enum = enumName;
  }
  return arg;
}

function scanMessage(element: XmlElement, opcode: number, version: number, where: string): MessageSpec {
  const name = identifier(element, where);
  const at = `${where}.${name}`;
  const sinceText = element.attributes.since;
  const since = sinceText === undefined ? 1 : positiveInteger(sinceText, 'since', at);
  if (since > version) fail(at, `since ${since} is above the interface version ${version}`);
  const type = element.attributes.type;
  if (type !== undefined && type !== 'destructor') fail(at, `unknown message type '${type}'`);
  const args = childrenNamed(element, 'arg').map((arg) => scanArg(arg, at));
  const names = new Set<string>();
  for (const arg of args) {
    if (names.has(arg.name)) fail(at, `duplicate argument '${arg.name}'`);
    names.add(arg.name);
  }
  return {
    name,
    opcode,
    since,
    ...(type === 'destructor' ? { destructor: true } : {}),
    args,
  };
}

function enumValue(text: string, where: string): number {
  const value = /^0x[0-9a-fA-F]+$/.test(text)
    ? Number.parseInt(text, 16)
    : /^[0-9]+$/.test(text)
      ? Number(text)
      : NaN;
  if (!Number.isSafeInteger(value) || value > 0xffffffff) fail(where, `enum value '${text}' is not a uint`);
  return value;
}

function scanEnum(element: XmlElement, where: string): EnumSpec {
  const name = identifier(element, where);
  const at = `${where} enum '${name}'`;
  const entries: Record<string, number> = {};
  for (const entry of childrenNamed(element, 'entry')) {
    const entryName = attribute(entry, 'name', at);
    if (!/^[A-Za-z0-9_]+$/.test(entryName)) fail(at, `'${entryName}' is not a valid entry name`);
    if (Object.hasOwn(entries, entryName)) fail(at, `duplicate entry '${entryName}'`);
    entries[entryName] = enumValue(attribute(entry, 'value', `${at}.${entryName}`), `${at}.${entryName}`);
  }
  return { name, ...(booleanAttribute(element, 'bitfield', at) ? { bitfield: true } : {}), entries };
}

function scanMessages(element: XmlElement, kind: 'request' | 'event', version: number, where: string) {
  const messages = childrenNamed(element, kind).map((message, opcode) =>
    scanMessage(message, opcode, version, `${where} ${kind}`),
  );
  const names = new Set<string>();
  for (const message of messages) {
    if (names.has(message.name)) fail(where, `duplicate ${kind} '${message.name}'`);
    names.add(message.name);
  }
  if (messages.length > 0xffff) fail(where, `too many ${kind}s for a 16-bit opcode`);
  return messages;
}

function scanInterface(element: XmlElement, where: string): InterfaceSpec {
  const name = identifier(element, where);
  const at = `${where} interface '${name}'`;
  const version = positiveInteger(attribute(element, 'version', at), 'version', at);
  return {
    name,
    version,
    requests: scanMessages(element, 'request', version, at),
    events: scanMessages(element, 'event', version, at),
    enums: childrenNamed(element, 'enum').map((item) => scanEnum(item, at)),
  };
}

/** Parses and checks one protocol XML document; `source` names it in errors and in the spec. */
export function scanProtocol(xml: string, source: string): ProtocolSpec {
  let root: XmlElement;
  try {
    root = parseXml(xml);
  } catch (error) {
    return fail(source, (error as Error).message);
  }
  if (root.name !== 'protocol') fail(source, `the root element is <${root.name}>, not <protocol>`);
  const name = attribute(root, 'name', source);
  const interfaces = childrenNamed(root, 'interface').map((element) => scanInterface(element, source));
  const names = new Set<string>();
  for (const iface of interfaces) {
    if (names.has(iface.name)) fail(source, `duplicate interface '${iface.name}'`);
    names.add(iface.name);
  }
  return { name, source, interfaces };
}
