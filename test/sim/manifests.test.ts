import { describe, expect, it } from 'vitest';
import { parseGraph } from '../../protocols/graph/xconnect-graph.js';
import { buildGraph, type PlatformServices } from '../../sim/pv-ctrl/graph-builder.js';
import {
  formatProblem,
  parseArgsManifest,
  parseRunManifest,
  parseServicesManifest,
  renderRunManifest,
  type ServiceRequirement,
} from '../../sim/pv-ctrl/manifests.js';

const messages = (parsed: { problems: Parameters<typeof formatProblem>[0][] }) =>
  parsed.problems.map(formatProblem);

describe('services.json', () => {
  it('reads the spec form and the bare array form alike', () => {
    const services = [{ name: 'raw-unix', type: 'unix', socket: '/run/example/raw.sock' }];
    const spec = parseServicesManifest(JSON.stringify({ '#spec': 'service-manifest-xconnect@1', services }));
    const bare = parseServicesManifest(JSON.stringify(services));
    expect(spec.problems).toEqual([]);
    expect(bare.problems).toEqual([]);
    expect(spec.value).toEqual([{ name: 'raw-unix', type: 'unix', socket: '/run/example/raw.sock' }]);
    expect(bare.value).toEqual(spec.value);
  });

  it('names the file and the JSON path of every bad value, and keeps the good entries', () => {
    const parsed = parseServicesManifest(
      JSON.stringify({
        '#spec': 'service-manifest-xconnect@1',
        services: [
          { name: 'a', type: 'unix', socket: '/run/a.sock' },
          { name: 'b', type: 'carrier-pigeon', socket: '/run/b.sock' },
          { name: 'c', type: 'rest', socket: 'run/c.sock' },
          { type: 'dbus', socket: '/run/../etc/d' },
        ],
      }),
      'provider/services.json',
    );
    expect(parsed.value.map((service) => service.name)).toEqual(['a']);
    expect(messages(parsed)).toEqual([
      "provider/services.json: services[1].type: unknown type 'carrier-pigeon' (expected one of unix, rest, dbus, drm, wayland)",
      'provider/services.json: services[2].socket: must be an absolute path',
      'provider/services.json: services[3].name: is required',
      "provider/services.json: services[3].socket: must not contain '.' or '..'",
    ]);
  });

  it('uses the same paths for the bare array form', () => {
    const parsed = parseServicesManifest(JSON.stringify([{ name: 'x', type: 'unix', socket: 'x.sock' }]));
    expect(messages(parsed)).toEqual(['services.json: services[0].socket: must be an absolute path']);
  });

  it('requires the #spec of the object form, and the right one', () => {
    expect(messages(parseServicesManifest('{"services": []}'))).toEqual([
      "services.json: #spec: is required ('service-manifest-xconnect@1')",
    ]);
    expect(messages(parseServicesManifest('{"#spec": "service-manifest-run@1", "services": []}'))).toEqual([
      'services.json: #spec: must be \'service-manifest-xconnect@1\' (got "service-manifest-run@1")',
    ]);
  });

  it('reports invalid JSON and a document of the wrong kind', () => {
    expect(messages(parseServicesManifest('{"services": ['))[0]).toMatch(/^services\.json: not valid JSON: /);
    expect(messages(parseServicesManifest('"unix"'))).toEqual([
      'services.json: must be an object (got "unix")',
    ]);
  });
});

describe('run.json and args.json', () => {
  it('reads required and optional requirements with their defaults', () => {
    const parsed = parseRunManifest(
      JSON.stringify({
        '#spec': 'service-manifest-run@1',
        name: 'app',
        roles: ['mgmt'],
        services: {
          required: [
            { name: 'system-bus', type: 'dbus', interface: 'org.pantavisor.Example', target: '/run/x' },
          ],
          optional: [{ name: 'raw-unix' }],
        },
      }),
    );
    expect(parsed.problems).toEqual([]);
    expect(parsed.value.name).toBe('app');
    expect(parsed.value.roles).toEqual(['mgmt']);
    expect(parsed.value.required).toEqual([
      {
        name: 'system-bus',
        type: 'dbus',
        role: 'any',
        interface: 'org.pantavisor.Example',
        target: '/run/x',
      },
    ]);
    expect(parsed.value.optional).toEqual([
      { name: 'raw-unix', type: null, role: 'any', interface: null, target: null },
    ]);
  });

  it('names the path of bad requirement fields', () => {
    const parsed = parseRunManifest(
      JSON.stringify({
        '#spec': 'service-manifest-run@1',
        services: { required: [{ name: 'ok' }, { name: 'x', target: 'relative' }, 'nope'], optional: {} },
      }),
      'app/run.json',
    );
    expect(parsed.value.required.map((requirement) => requirement.name)).toEqual(['ok']);
    expect(messages(parsed)).toEqual([
      'app/run.json: services.required[1].target: must be an absolute path',
      'app/run.json: services.required[2]: must be an object (got "nope")',
      'app/run.json: services.optional: must be an array (got an object)',
    ]);
  });

  it('renders args.json into run.json: the args replace the lists they name', () => {
    const run = parseRunManifest(
      JSON.stringify({
        '#spec': 'service-manifest-run@1',
        services: { required: [{ name: 'old' }], optional: [{ name: 'kept' }] },
      }),
    ).value;
    const args = parseArgsManifest(
      JSON.stringify({ PV_SERVICES_REQUIRED: [{ name: 'raw-unix', type: 'unix' }], OTHER_ARG: 1 }),
    );
    expect(args.problems).toEqual([]);
    const rendered = renderRunManifest(run, args.value);
    expect(rendered.required.map((requirement) => requirement.name)).toEqual(['raw-unix']);
    expect(rendered.optional.map((requirement) => requirement.name)).toEqual(['kept']);
    expect(renderRunManifest(null, args.value).required).toEqual(rendered.required);
  });

  it('names the args key of a bad entry', () => {
    const args = parseArgsManifest('{"PV_SERVICES_OPTIONAL": [{"name": "a/b"}]}', 'c/args.json');
    expect(messages(args)).toEqual([
      "c/args.json: PV_SERVICES_OPTIONAL[0].name: 'a/b' must not contain '/' or NUL or start with '.'",
    ]);
  });
});

function requirement(name: string, extra: Partial<ServiceRequirement> = {}): ServiceRequirement {
  return { name, type: null, role: 'any', interface: null, target: null, ...extra };
}

function platform(
  name: string,
  exports: PlatformServices['exports'],
  required: ServiceRequirement[] = [],
  optional: ServiceRequirement[] = [],
): PlatformServices {
  return { name, exports, run: { required, optional } };
}

describe('graph builder', () => {
  const provider = platform('provider', [
    { name: 'raw-unix', type: 'unix', socket: '/run/example/raw.sock' },
    { name: 'system-bus', type: 'dbus', socket: '/run/dbus/system_bus_socket' },
    { name: 'drm-render', type: 'drm', socket: '/dev/dri/renderD128' },
  ]);

  it('makes one link per requirement with upstream defaults, pids from the map (-1 never started)', () => {
    const consumer = platform(
      'app',
      [],
      [requirement('raw-unix'), requirement('drm-render', { role: 'render' })],
    );
    const built = buildGraph([provider, consumer], new Map([['provider', 42]]));
    expect(built.errors).toEqual([]);
    expect(built.links).toEqual([
      {
        consumer: 'app',
        consumer_pid: -1,
        provider: 'provider',
        provider_pid: 42,
        name: 'raw-unix',
        type: 'unix',
        role: 'any',
        interface: 'unix',
        target: '/run/pv/services/raw-unix.sock',
        socket: '/run/example/raw.sock',
      },
      {
        consumer: 'app',
        consumer_pid: -1,
        provider: 'provider',
        provider_pid: 42,
        name: 'drm-render',
        type: 'drm',
        role: 'render',
        interface: 'drm',
        target: '/dev/dri/renderD128',
        socket: '/dev/dri/renderD128',
      },
    ]);
  });

  it('keeps every entry of a multi-entry requirement array (upstream once dropped every other one)', () => {
    const entries = ['operator', 'admin', 'viewer', 'any', 'guest'].map((role) =>
      requirement('system-bus', { role, target: `/run/pv/dbus/${role}.sock` }),
    );
    const built = buildGraph([provider, platform('app', [], entries)]);
    expect(built.links.map((link) => [link.role, link.target])).toEqual(
      entries.map((entry) => [entry.role, entry.target]),
    );
    // The daemon's own graph parser sees the same links: none is a duplicate key or otherwise skipped.
    const parsed = parseGraph(JSON.stringify(built.links));
    expect(parsed.warnings).toEqual([]);
    expect(parsed.links).toHaveLength(entries.length);
  });

  it("reports a missing required provider in upstream's words; a missing optional one is no link, no error", () => {
    const consumer = platform('app', [], [requirement('network-manager')], [requirement('wayland-0')]);
    const built = buildGraph([provider, consumer]);
    expect(built.errors).toEqual(["required service 'network-manager' for platform 'app' not found"]);
    expect(built.links).toEqual([]);
  });

  it('takes the type from the export, warning when the requirement says otherwise', () => {
    const consumer = platform('app', [], [requirement('raw-unix', { type: 'rest', interface: 'custom' })]);
    const built = buildGraph([provider, consumer]);
    expect(built.links[0]?.type).toBe('unix');
    expect(built.links[0]?.interface).toBe('custom');
    expect(built.warnings).toEqual([
      "platform 'app' requires 'raw-unix' as type 'rest' but 'provider' exports it as 'unix': using 'unix'",
    ]);
  });

  it('uses the first provider of a service exported twice, with a warning', () => {
    const twin = platform('twin', [{ name: 'raw-unix', type: 'unix', socket: '/run/twin.sock' }]);
    const built = buildGraph([provider, twin, platform('app', [], [requirement('raw-unix')])]);
    expect(built.links.map((link) => link.provider)).toEqual(['provider']);
    expect(built.warnings).toEqual([
      "service 'raw-unix' is exported by 'provider' and 'twin': using 'provider'",
    ]);
  });
});
