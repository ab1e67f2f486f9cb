import { describe, expect, it } from 'vitest';
import { GraphError, linkKey, parseGraph, specHash } from '../../../protocols/graph/xconnect-graph.js';

const base = {
  consumer: 'app',
  consumer_pid: 100,
  provider: 'nm',
  provider_pid: 200,
  name: 'raw-unix',
  type: 'unix',
  socket: '/run/nm/api.sock',
};

describe('parseGraph', () => {
  it('applies the contract defaults', () => {
    const { links, warnings } = parseGraph(JSON.stringify([{ ...base, target: null }]));
    expect(warnings).toEqual([]);
    expect(links).toEqual([
      {
        consumer: 'app',
        consumerPid: 100,
        provider: 'nm',
        providerPid: 200,
        name: 'raw-unix',
        type: 'unix',
        role: 'any',
        interface: 'unix',
        target: '/run/pv/services/raw-unix.sock',
        socket: '/run/nm/api.sock',
        uid: null,
        allow: undefined,
        credentials: 'root',
      },
    ]);
  });

  it('defaults a drm target to the provider path and keeps explicit fields', () => {
    const { links } = parseGraph(
      JSON.stringify([
        { ...base, type: 'drm', socket: '/dev/dri/renderD128', role: 'render' },
        {
          ...base,
          name: 'bus',
          type: 'dbus',
          target: '/run/dbus/system_bus_socket',
          interface: 'org.x',
          uid: 1001,
        },
      ]),
    );
    expect(links[0]).toMatchObject({ target: '/dev/dri/renderD128', role: 'render' });
    expect(links[1]).toMatchObject({ target: '/run/dbus/system_bus_socket', interface: 'org.x', uid: 1001 });
  });

  it('ignores unknown fields', () => {
    const { links } = parseGraph(JSON.stringify([{ ...base, extra: { deep: true } }]));
    expect(links).toHaveLength(1);
  });

  it.each([
    ['not an object', 42, 'not a link object'],
    ['an array entry', [1], 'not a link object'],
    ['null', null, 'not a link object'],
    ['no consumer', { ...base, consumer: undefined }, 'consumer'],
    ['no name', { ...base, name: '' }, 'name'],
    ['a name with a slash', { ...base, name: '../../etc/x' }, "must not contain '/'"],
    ['a relative socket', { ...base, socket: 'run/x.sock' }, 'must be an absolute path'],
    ['a socket with ..', { ...base, socket: '/run/../etc/shadow' }, "'..'"],
    ['a target with NUL', { ...base, target: '/run/a\0b' }, 'NUL'],
    ['an unknown type', { ...base, type: 'carrier-pigeon' }, 'unknown link type'],
    ['no provider', { ...base, provider: undefined }, 'provider'],
    ['a fractional pid', { ...base, consumer_pid: 1.5 }, 'consumer_pid'],
    ['a string uid', { ...base, uid: '0' }, 'uid'],
  ])('skips %s with a warning', (_label, entry, reason) => {
    const { links, warnings } = parseGraph(JSON.stringify([entry, base]));
    expect(links).toHaveLength(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('graph[0] skipped');
    expect(warnings[0]).toContain(reason);
  });

  it("carries the provider's allow list as given (validated per link) and the dial identity", () => {
    const allow = ['operator', { role: 'viewer', methods: ['GET'], bogus: 1 }];
    const { links, warnings } = parseGraph(
      JSON.stringify([
        { ...base, type: 'rest', allow, credentials: 'role' },
        { ...base, name: 'b', allow: null },
        { ...base, name: 'c', allow: 'not even a list' },
      ]),
    );
    expect(warnings).toEqual([]);
    expect(links.map((link) => [link.allow, link.credentials])).toEqual([
      [allow, 'role'],
      [undefined, 'root'],
      ['not even a list', 'root'],
    ]);
  });

  it.each([
    [{ credentials: 'nobody' }, 'credentials: must be one of root, role'],
    [{ credentials: 0 }, 'credentials: must be one of root, role'],
    [{ type: 'dbus', credentials: 'role' }, "credentials: 'role' applies to unix and rest links, not dbus"],
  ])('skips an entry with %j', (fields, reason) => {
    const { links, warnings } = parseGraph(JSON.stringify([{ ...base, ...fields }]));
    expect(links).toEqual([]);
    expect(warnings).toEqual([`graph[0] skipped: ${reason}`]);
  });

  it('keeps the first of two entries with the same key', () => {
    const { links, warnings } = parseGraph(JSON.stringify([base, { ...base, provider: 'other' }]));
    expect(links.map((link) => link.provider)).toEqual(['nm']);
    expect(warnings[0]).toContain('duplicate');
  });

  it.each([
    ['{}', 'not a JSON array'],
    ['[{"consumer":', 'not valid JSON'],
    ['null', 'not a JSON array'],
    ['', 'not valid JSON'],
  ])('rejects the body %j', (text, message) => {
    expect(() => parseGraph(text)).toThrow(GraphError);
    expect(() => parseGraph(text)).toThrow(message);
  });
});

describe('link identity', () => {
  it('keys by consumer, name and target; everything else is the spec', () => {
    const [a] = parseGraph(JSON.stringify([base])).links;
    const [b] = parseGraph(JSON.stringify([{ ...base, provider_pid: 201, role: 'admin' }])).links;
    if (!a || !b) throw new Error('links expected');
    expect(linkKey(a)).toBe(linkKey(b));
    expect(specHash(a)).not.toBe(specHash(b));
    expect(specHash(a)).toBe(specHash({ ...a }));
  });

  it('re-establishes a link whose allow list or dial identity changed', () => {
    const variants = [{}, { allow: ['operator'] }, { allow: ['viewer'] }, { credentials: 'role' }];
    const links = variants.flatMap((fields) => parseGraph(JSON.stringify([{ ...base, ...fields }])).links);
    expect(links).toHaveLength(4);
    expect(new Set(links.map(linkKey)).size).toBe(1);
    expect(new Set(links.map(specHash)).size).toBe(4);
  });
});
