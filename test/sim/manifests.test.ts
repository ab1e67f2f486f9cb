import { describe, expect, it } from 'vitest';
import { type LinkType, parseGraph } from '../../protocols/graph/xconnect-graph.js';
import { allowsRole, buildGraph, type PlatformServices } from '../../sim/pv-ctrl/graph-builder.js';
import { allocateRoleUids, busConfig, busPasswd, busPolicy } from '../../sim/pv-ctrl/hosted-bus.js';
import { formatJsonError, parseJsonText, suggestKey } from '../../sim/pv-ctrl/json-text.js';
import {
  formatProblem,
  parseArgsManifest,
  parseRunManifest,
  parseServicesManifest,
  renderRunManifest,
  type ServiceExport,
  type ServiceRequirement,
} from '../../sim/pv-ctrl/manifests.js';
import {
  groupStatus,
  type PlatformDeclaration,
  planAction,
  RESTART_REFUSED,
  START_REFUSED,
  settleGroups,
} from '../../sim/pv-ctrl/platforms.js';

const messages = (parsed: { problems: Parameters<typeof formatProblem>[0][] }) =>
  parsed.problems.map(formatProblem);

describe('services.json', () => {
  it('reads the spec form and the bare array form alike', () => {
    const services = [{ name: 'raw-unix', type: 'unix', socket: '/run/example/raw.sock' }];
    const spec = parseServicesManifest(JSON.stringify({ '#spec': 'service-manifest-xconnect@1', services }));
    const bare = parseServicesManifest(JSON.stringify(services));
    expect(spec.problems).toEqual([]);
    expect(bare.problems).toEqual([]);
    expect(spec.value.exports).toEqual([
      {
        name: 'raw-unix',
        type: 'unix',
        socket: '/run/example/raw.sock',
        at: { file: 'services.json', path: 'services[0]' },
      },
    ]);
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
    expect(parsed.value.exports.map((service) => service.name)).toEqual(['a']);
    expect(messages(parsed)).toEqual([
      "provider/services.json: services[1].type: unknown type 'carrier-pigeon' (expected one of unix, rest, dbus, drm, wayland)",
      'provider/services.json: services[2].socket: must be an absolute path',
      'provider/services.json: services[3].name: is required',
      "provider/services.json: services[3].socket: must not contain '.' or '..'",
    ]);
  });

  it("reads an export's allow list and dial identity, each error with its file and JSON path", () => {
    const allow = ['admin', { role: 'viewer', methods: ['GET'], paths: ['/api/*'] }];
    const parsed = parseServicesManifest(
      JSON.stringify({
        '#spec': 'service-manifest-xconnect@1',
        services: [
          { name: 'api', type: 'rest', socket: '/run/api.sock', allow, credentials: 'role' },
          { name: 'raw', type: 'unix', socket: '/run/raw.sock', allow: [{ role: 'x', paths: ['/a'] }] },
          { name: 'gpu', type: 'drm', socket: '/dev/dri/card0', credentials: 'role' },
          {
            name: 'ui',
            type: 'wayland',
            socket: '/run/w.sock',
            allow: [{ role: 'x', globals: ['wl_seat'], y: [] }],
          },
          { name: 'bus', type: 'dbus', socket: '/run/b.sock', allow: 'admin', credentials: 'nobody' },
          { name: 'web', type: 'rest', socket: '/run/web.sock', allow: [{ role: 'x', methods: ['GET*'] }] },
        ],
      }),
      'provider/services.json',
    );
    expect(parsed.value.exports).toEqual([
      {
        name: 'api',
        type: 'rest',
        socket: '/run/api.sock',
        allow,
        credentials: 'role',
        at: { file: 'provider/services.json', path: 'services[0]' },
      },
    ]);
    expect(messages(parsed)).toEqual([
      'provider/services.json: services[1].allow[0].paths: "paths" narrows dbus/rest links, not unix links',
      "provider/services.json: services[2].credentials: 'role' applies to unix and rest services, not drm",
      'provider/services.json: services[3].allow[0].y: unknown field "y" (wayland links take "globals")',
      "provider/services.json: services[4].credentials: 'nobody' is not one of root, role",
      'provider/services.json: services[4].allow: allow must be an array, not a string',
      expect.stringMatching(/^provider\/services\.json: services\[5\]\.allow\[0\]\.methods\[0\]: /),
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

  it('reports invalid JSON by line and column, and a document of the wrong kind', () => {
    expect(messages(parseServicesManifest('{"services": ['))).toEqual([
      'services.json: not valid JSON: line 1, column 15: expected a value, found the end of the file',
    ]);
    const text =
      '{\n  "#spec": "service-manifest-xconnect@1",\n  "services": [\n    {"name": "a",}\n  ]\n}\n';
    expect(messages(parseServicesManifest(text, 'p/services.json'))).toEqual([
      "p/services.json: not valid JSON: line 4, column 18: a trailing ',' before '}'",
    ]);
    expect(messages(parseServicesManifest('"unix"'))).toEqual([
      'services.json: must be an object (got "unix")',
    ]);
  });

  it('warns about unknown keys with file, JSON path and the key they probably misspell', () => {
    const parsed = parseServicesManifest(
      JSON.stringify([{ name: 'a', tpye: 'unix', type: 'unix', socket: '/run/a', color: 'red' }]),
      'p/services.json',
    );
    expect(parsed.problems).toEqual([]);
    expect(parsed.warnings.map(formatProblem)).toEqual([
      "p/services.json: services[0].tpye: unknown key (did you mean 'type'?)",
      'p/services.json: services[0].color: unknown key, ignored (known: name, type, socket, allow, credentials)',
    ]);
  });

  it('reads hosted-bus name declarations apart from exports (owner role defaults to the name)', () => {
    const parsed = parseServicesManifest(
      JSON.stringify({
        '#spec': 'service-manifest-xconnect@1',
        services: [
          { type: 'dbus', bus: 'system-bus', owns: 'org.example.Foo', role: 'foo', allow: ['operator'] },
          { type: 'dbus', owns: 'org.example.Bar' },
          { type: 'dbus', bus: 'session-bus', owns: 'nodots' },
        ],
      }),
    );
    expect(parsed.value.exports).toEqual([]);
    expect(parsed.value.hostedNames.map(({ owns, role, allow }) => [owns, role, allow])).toEqual([
      ['org.example.Foo', 'foo', ['operator']],
      ['org.example.Bar', 'org.example.Bar', []],
    ]);
    expect(messages(parsed)).toEqual([
      "services.json: services[2].bus: 'session-bus': the only hosted bus is 'system-bus'",
      "services.json: services[2].owns: 'nodots' is not a well-known D-Bus name (like org.example.Foo)",
    ]);
  });
});

describe('JSON text', () => {
  it('locates errors by line and column, whatever Node version words them', () => {
    const cases: Array<[string, string]> = [
      ['', 'line 1, column 1: expected a value, found the end of the file'],
      ['{"a": 1 "b": 2}', "line 1, column 9: expected ',' or '}' after a value in an object, found '\"'"],
      ['[1,\n 2,\n ]', "line 3, column 2: a trailing ',' before ']'"],
      ['{"a": "x\ny"}', 'line 1, column 9: unterminated string (a line break inside quotes)'],
      ["{'a': 1}", "line 1, column 2: expected a key in double quotes, found '''"],
      ['{"a": 01}', "line 1, column 8: expected ',' or '}' after a value in an object, found '1'"],
      ['{} x', "line 1, column 4: unexpected 'x' after the document"],
      ['{"a": tru}', "line 1, column 7: expected a value, found 't'"],
    ];
    for (const [text, expected] of cases) {
      const parsed = parseJsonText(text);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) expect(formatJsonError(parsed.error)).toBe(`not valid JSON: ${expected}`);
    }
    expect(parseJsonText('{"a": [1, 2.5e3, "\\u00e9", true, null]}')).toEqual({
      ok: true,
      value: { a: [1, 2500, 'é', true, null] },
    });
  });

  it('suggests the known key a misspelling is closest to, and nothing for unrelated keys', () => {
    const known = ['name', 'type', 'role', 'interface', 'target', 'required', 'optional'];
    expect(suggestKey('requried', known)).toBe('required');
    expect(suggestKey('tagret', known)).toBe('target');
    expect(suggestKey('Target', known)).toBe('target');
    expect(suggestKey('interfce', known)).toBe('interface');
    expect(suggestKey('colour', known)).toBeNull();
    expect(suggestKey('nme', known)).toBe('name');
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
        at: { file: 'run.json', path: 'services.required[0]' },
      },
    ]);
    expect(parsed.value.optional).toEqual([
      {
        name: 'raw-unix',
        type: null,
        role: 'any',
        interface: null,
        target: null,
        at: { file: 'run.json', path: 'services.optional[0]' },
      },
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

  it('warns about misspelled keys at every level, with a suggestion', () => {
    const parsed = parseRunManifest(
      JSON.stringify({
        '#spec': 'service-manifest-run@1',
        nmae: 'app',
        volumes: [],
        services: { requried: [{ name: 'a' }], optional: [{ name: 'b', tagret: '/run/b' }] },
      }),
      'app/run.json',
    );
    expect(parsed.warnings.map(formatProblem)).toEqual([
      "app/run.json: nmae: unknown key (did you mean 'name'?)",
      "app/run.json: services.requried: unknown key (did you mean 'required'?)",
      "app/run.json: services.optional[0].tagret: unknown key (did you mean 'target'?)",
    ]);
    const args = parseArgsManifest('{"PV_SERVICES_REQURED": [], "MY_TEMPLATE_ARG": 1}', 'app/args.json');
    expect(args.warnings.map(formatProblem)).toEqual([
      "app/args.json: PV_SERVICES_REQURED: unknown key (did you mean 'PV_SERVICES_REQUIRED'?)",
    ]);
  });

  it('checks group, status goal, restart policy and roles', () => {
    const parsed = parseRunManifest(
      JSON.stringify({
        '#spec': 'service-manifest-run@1',
        group: 'data',
        status_goal: 'RUNNING',
        restart_policy: 'always',
        roles: ['mgmt', 'admin'],
      }),
    );
    expect(messages(parsed)).toEqual([
      "run.json: group: group 'data' is not simulated (its containers are only mounted, never started)",
      "run.json: status_goal: 'RUNNING' is not one of STARTED, READY",
      "run.json: restart_policy: 'always' is not one of system, container",
    ]);
    expect(parsed.warnings.map(formatProblem)).toEqual([
      "run.json: roles[1]: role 'admin' means nothing to Pantavisor (it knows mgmt and nobody)",
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
    const policy = parseArgsManifest('{"PV_RESTART_POLICY": "container", "PV_ROLES": ["mgmt"]}').value;
    expect(renderRunManifest(run, policy)).toMatchObject({ restartPolicy: 'container', roles: ['mgmt'] });
  });

  it('names the args key of a bad entry', () => {
    const args = parseArgsManifest('{"PV_SERVICES_OPTIONAL": [{"name": "a/b"}]}', 'c/args.json');
    expect(messages(args)).toEqual([
      "c/args.json: PV_SERVICES_OPTIONAL[0].name: 'a/b' must not contain '/' or NUL or start with '.'",
    ]);
  });
});

const AT = { file: 'app/args.json', path: 'PV_SERVICES_REQUIRED[0]' };

function requirement(name: string, extra: Partial<ServiceRequirement> = {}): ServiceRequirement {
  return { name, type: null, role: 'any', interface: null, target: null, at: AT, ...extra };
}

function exported(name: string, type: LinkType, socket: string): ServiceExport {
  return { name, type, socket, at: { file: 'provider/services.json', path: 'services[0]' } };
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
    exported('raw-unix', 'unix', '/run/example/raw.sock'),
    exported('system-bus', 'dbus', '/run/dbus/system_bus_socket'),
    exported('drm-render', 'drm', '/dev/dri/renderD128'),
  ]);

  it('makes one link per requirement with upstream defaults (no target: null), pids from the map', () => {
    const consumer = platform(
      'app',
      [],
      [requirement('raw-unix'), requirement('drm-render', { role: 'render', target: '/dev/dri/renderD128' })],
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
        target: null,
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

  it("copies the export's allow and credentials into every link to it, as the daemon reads them", () => {
    const allow = [{ role: 'viewer', methods: ['GET'] }];
    const guarded = platform('guarded', [
      { ...exported('api', 'rest', '/run/api.sock'), allow, credentials: 'role' },
    ]);
    const consumer = platform(
      'app',
      [],
      [requirement('api', { role: 'viewer' }), requirement('api', { role: 'x', target: '/run/x.sock' })],
    );
    const built = buildGraph([guarded, consumer]);
    expect(built.links.map((link) => [link.role, link.allow, link.credentials])).toEqual([
      ['viewer', allow, 'role'],
      ['x', allow, 'role'],
    ]);
    const read = parseGraph(JSON.stringify(built.links));
    expect(read.links.map((link) => [link.allow, link.credentials])).toEqual([
      [allow, 'role'],
      [allow, 'role'],
    ]);
  });

  it('tells which links their own allow list refuses, as the daemon decides', () => {
    const link = { type: 'rest' as const, role: 'viewer' };
    expect(allowsRole({ ...link })).toBe(true);
    expect(allowsRole({ ...link, allow: ['viewer'] })).toBe(true);
    expect(allowsRole({ ...link, allow: [{ role: 'viewer', methods: ['GET'] }] })).toBe(true);
    expect(allowsRole({ ...link, allow: ['operator'] })).toBe(false);
    // A malformed list lets nobody use the link.
    expect(allowsRole({ ...link, allow: [{ role: 'viewer', globals: ['wl_shm'] }] })).toBe(false);
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
    expect(built.errors).toEqual([
      "app/args.json: PV_SERVICES_REQUIRED[0]: required service 'network-manager' for platform 'app' not found",
    ]);
    expect(built.links).toEqual([]);
  });

  it('takes the type from the export, warning when the requirement says otherwise', () => {
    const consumer = platform('app', [], [requirement('raw-unix', { type: 'rest', interface: 'custom' })]);
    const built = buildGraph([provider, consumer]);
    expect(built.links[0]?.type).toBe('unix');
    expect(built.links[0]?.interface).toBe('custom');
    expect(built.warnings).toEqual([
      "app/args.json: PV_SERVICES_REQUIRED[0]: requires 'raw-unix' as type 'rest' but 'provider' exports it as 'unix': using 'unix'",
    ]);
  });

  it('links a service exported twice to each provider, as upstream does; the daemon keeps the first', () => {
    const twin = platform('twin', [exported('raw-unix', 'unix', '/run/twin.sock')]);
    const built = buildGraph([provider, twin, platform('app', [], [requirement('raw-unix')])]);
    expect(built.links.map((link) => link.provider)).toEqual(['provider', 'twin']);
    expect(built.warnings).toEqual([
      "provider/services.json: services[0]: service 'raw-unix' is also exported by 'provider': its consumers get a link to each, and pv-xconnect keeps the first ('provider')",
    ]);
    expect(parseGraph(JSON.stringify(built.links)).links.map((link) => link.provider)).toEqual(['provider']);
  });

  it('serves system-bus from the host with the role uid when the hosted bus is on, and refuses an export of it', () => {
    const owner = {
      ...platform(
        'server',
        [],
        [requirement('system-bus', { role: 'foo', target: '/run/dbus/system_bus_socket' })],
      ),
      hostedNames: [
        { bus: 'system-bus', owns: 'org.example.Foo', role: 'foo', allow: ['operator'], at: AT },
        { bus: 'system-bus', owns: 'org.example.Foo', role: 'bad:role', allow: [], at: AT },
      ],
    };
    const caller = platform('app', [], [requirement('system-bus', { role: 'operator' })]);
    const uids = new Map([
      ['foo', 90000],
      ['operator', 90001],
    ]);
    const built = buildGraph([provider, owner, caller], new Map([['app', 7]]), {
      socket: '/run/pv/dbus/system_bus_socket',
      uidOf: (role) => uids.get(role) ?? -1,
    });
    expect(built.links.filter((link) => link.consumer === 'app')).toEqual([
      {
        consumer: 'app',
        consumer_pid: 7,
        provider: '_pv_',
        provider_pid: 0,
        name: 'system-bus',
        type: 'dbus',
        role: 'operator',
        interface: 'dbus',
        target: null,
        socket: '/run/pv/dbus/system_bus_socket',
        uid: 90001,
      },
    ]);
    expect(built.errors).toEqual([
      "provider/services.json: services[0]: 'system-bus' is reserved for the hosted system bus (pantavisor.config turns it on)",
      "app/args.json: PV_SERVICES_REQUIRED[0]: role 'bad:role' cannot name a user on the hosted bus",
      "app/args.json: PV_SERVICES_REQUIRED[0]: 'org.example.Foo' is already owned by 'server'",
    ]);
  });
});

describe('platforms', () => {
  const declared = (name: string, extra: Partial<PlatformDeclaration> = {}): PlatformDeclaration => ({
    name,
    group: null,
    statusGoal: null,
    restartPolicy: null,
    roles: [],
    ...extra,
  });

  it('settles groups as upstream: the first unconfigured one in root when root is empty, the rest in platform', () => {
    const settled = settleGroups([
      declared('b'),
      declared('a'),
      declared('app', { group: 'app' }),
      declared('c', { restartPolicy: 'container', roles: ['mgmt'] }),
    ]);
    expect([...settled].map(([name, s]) => [name, s.group, s.restartPolicy, s.mgmt])).toEqual([
      ['a', 'root', 'system', false],
      ['app', 'app', 'container', false],
      ['b', 'platform', 'system', false],
      ['c', 'platform', 'container', true],
    ]);
    const withRoot = settleGroups([declared('a'), declared('r', { group: 'root' })]);
    expect(withRoot.get('a')?.group).toBe('platform');
  });

  it("follows upstream's decision table for container actions", () => {
    expect(planAction('STARTED', false, 'stop')).toBe('stop');
    expect(planAction('STOPPED', false, 'stop')).toBe('mark-user-stopped');
    expect(planAction('STOPPED', true, 'stop')).toBe('none');
    expect(planAction('READY', false, 'start')).toBe('none');
    expect(planAction('STOPPED', true, 'start')).toBe('start');
    expect(planAction('STOPPING', true, 'start')).toBe('restart');
    expect(planAction('INSTALLED', false, 'start')).toEqual({ refused: START_REFUSED });
    expect(planAction('STARTING', false, 'restart')).toBe('restart');
    expect(planAction('RECOVERING', false, 'restart')).toBe('start');
    expect(planAction('INSTALLED', false, 'restart')).toEqual({ refused: RESTART_REFUSED });
  });

  it('a group is READY when its members reached their goal, else its lowest unsettled status', () => {
    expect(groupStatus([{ status: 'STARTED', statusGoal: 'STARTED' }])).toBe('READY');
    expect(
      groupStatus([
        { status: 'STARTED', statusGoal: 'READY' },
        { status: 'STARTING', statusGoal: 'STARTED' },
      ]),
    ).toBe('STARTING');
  });
});

describe('hosted bus', () => {
  const names = [
    {
      platform: 'server',
      bus: 'system-bus',
      owns: 'org.example.Foo',
      role: 'foo',
      allow: ['operator', 'monitor'],
      at: AT,
    },
  ];

  it('allocates uids from 90000 in the order upstream meets the roles', () => {
    expect([...allocateRoleUids(names, ['operator', 'stranger', 'foo'])]).toEqual([
      ['foo', 90000],
      ['operator', 90001],
      ['monitor', 90002],
      ['stranger', 90003],
    ]);
  });

  it('generates a default-deny bus, a block per owned name and allowed role, and a passwd with every role', () => {
    const uids = allocateRoleUids(names, ['stranger']);
    expect(busConfig('/x/system_bus_socket', '/x/policy.d')).toContain('<deny send_type="method_call"/>');
    expect(busConfig('/x/system_bus_socket', '/x/policy.d')).toContain(
      '<includedir>/x/policy.d</includedir>',
    );
    const policy = busPolicy(names, uids);
    expect(policy).toContain('<policy user="pv-dbus-foo">\n    <allow own="org.example.Foo"/>');
    expect(policy).toContain(
      '<policy user="pv-dbus-operator">\n    <allow send_destination="org.example.Foo"/>',
    );
    expect(policy).not.toContain('stranger');
    expect(busPasswd('root:x:0:0:root:/root:/bin/sh', uids).split('\n')).toEqual([
      'root:x:0:0:root:/root:/bin/sh',
      'pv-dbus-foo:x:90000:90000::/nonexistent:/usr/sbin/nologin',
      'pv-dbus-operator:x:90001:90001::/nonexistent:/usr/sbin/nologin',
      'pv-dbus-monitor:x:90002:90002::/nonexistent:/usr/sbin/nologin',
      'pv-dbus-stranger:x:90003:90003::/nonexistent:/usr/sbin/nologin',
      '',
    ]);
  });
});
