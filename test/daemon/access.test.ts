// Which policy governs a link and whether its role may use it, decided before any mediator runs (root, real
// namespaces): the graph's `allow`, else the provider's own /etc/pv-xconnect/allow.json read inside the provider;
// a role not listed or a malformed policy fails that link (not retried), with nothing planted in the consumer.
// What each link type narrows is tested with its mediator.
import { describe, expect, it } from 'vitest';
import type { Daemon } from '../../daemon/daemon.js';
import { linkStatus, renderMetrics } from '../../daemon/status-api.js';
import type { Fields } from '../../log/logger.js';
import { statIn } from '../../native/namespace.js';
import { type Container, startContainer } from '../../testkit/container.js';
import {
  connectFrom,
  eventually,
  type GraphEntry,
  graphEntry,
  readToEnd,
  recordingLogger,
  startProvider,
} from '../../testkit/mesh.js';
import { parseExposition } from '../../testkit/prometheus.js';
import { daemonTestbed } from '../../testkit/testbed.js';

const bed = daemonTestbed('access', 200);

async function container(setup?: string): Promise<Container> {
  const started = await startContainer({ privateEtc: true, ...(setup === undefined ? {} : { setup }) });
  bed.defer(() => started.stop());
  return started;
}

/** A provider container serving echo at /run/p/<name>.sock for each name, with `policyFile` as its allow.json. */
async function providerWith(names: string[], policyFile?: string): Promise<Container> {
  const setup =
    policyFile === undefined
      ? undefined
      : `mkdir -p /etc/pv-xconnect && printf '%s' '${policyFile}' > /etc/pv-xconnect/allow.json`;
  const provider = await container(setup);
  for (const name of names) {
    const served = await startProvider(provider.pid, `/run/p/${name}.sock`);
    bed.defer(() => served.close());
  }
  return provider;
}

function link(consumer: Container, provider: Container, name: string, extra: Partial<GraphEntry> = {}) {
  return graphEntry('unix', consumer, provider, { name, socket: `/run/p/${name}.sock`, ...extra });
}

const linkNamed = (daemon: Daemon, name: string) => {
  const found = daemon.reconciler.list().find((l) => l.spec.name === name);
  if (!found) throw new Error(`no link ${name}`);
  return found;
};

async function settledState(daemon: Daemon, name: string) {
  await eventually(() => linkNamed(daemon, name).state !== 'pending', undefined, `link ${name} to settle`);
  return linkNamed(daemon, name);
}

async function planted(consumer: Container, name: string): Promise<boolean> {
  return statIn({ pid: consumer.pid, path: `/run/pv/services/${name}.sock` }).then(
    () => true,
    () => false,
  );
}

async function echoes(consumer: Container, name: string): Promise<boolean> {
  const socket = await connectFrom(consumer.pid, `/run/pv/services/${name}.sock`);
  const reply = readToEnd(socket);
  socket.write(Buffer.from('ping'));
  socket.end();
  return (await reply).data.toString() === 'ping';
}

describe("the graph's allow list", () => {
  it('lets a listed role use the link and fails an unlisted one with nothing planted', async () => {
    const provider = await providerWith(['open', 'closed', 'anyrole']);
    const consumer = await container();
    bed.ctrl.setGraph([
      link(consumer, provider, 'open', { role: 'operator', allow: ['viewer', { role: 'operator' }] }),
      link(consumer, provider, 'closed', { role: 'stranger', allow: ['operator'] }),
      // `any` is a role like any other: with a policy present it must be listed.
      link(consumer, provider, 'anyrole', { allow: ['operator'] }),
    ]);
    const daemon = await bed.startDaemon();

    expect((await settledState(daemon, 'open')).state).toBe('active');
    expect(await echoes(consumer, 'open')).toBe(true);

    for (const [name, role] of [
      ['closed', 'stranger'],
      ['anyrole', 'any'],
    ] as const) {
      const refused = await settledState(daemon, name);
      expect(refused.state).toBe('failed');
      expect(refused.error).toBe(`role '${role}' is not allowed by svc/${name}`);
      expect(await planted(consumer, name)).toBe(false);
    }
  });

  it('fails only the link whose allow list is malformed, without retrying it until the graph changes', async () => {
    const provider = await providerWith(['good', 'bad']);
    const consumer = await container();
    const bad = (allow: unknown) => link(consumer, provider, 'bad', { role: 'operator', allow });
    bed.ctrl.setGraph([
      link(consumer, provider, 'good', { role: 'operator', allow: ['operator'] }),
      bad([{ role: 'operator', paths: ['/x'] }]),
    ]);
    const lines: Fields[] = [];
    const daemon = await bed.startDaemon({ log: recordingLogger(lines) });

    expect((await settledState(daemon, 'good')).state).toBe('active');
    const failed = await settledState(daemon, 'bad');
    expect(failed.state).toBe('failed');
    expect(failed.error).toBe(
      'policy error: "paths" narrows dbus/rest links, not unix links, at graph entry of svc/bad: allow[0].paths',
    );
    expect(await planted(consumer, 'bad')).toBe(false);
    // Terminal: logged once as not retried, and no attempt follows over several polls (the retry base is 200 ms).
    const polls = daemon.graph().polls;
    await eventually(() => daemon.graph().polls >= polls + 4, undefined, 'four more polls');
    const failures = lines.filter((line) => line.event === 'link failed' && line.link === 'bad');
    expect(failures.map((line) => line.retry)).toEqual([false]);

    // A corrected policy is a new spec: the link comes up.
    bed.ctrl.setGraph([
      link(consumer, provider, 'good', { role: 'operator', allow: ['operator'] }),
      bad(['operator']),
    ]);
    await eventually(() => linkNamed(daemon, 'bad').state === 'active', undefined, 'the corrected link');
    expect(await echoes(consumer, 'bad')).toBe(true);
  });
});

describe("the provider's own allow.json", () => {
  it('governs links whose graph entry has no allow list; the graph wins when it has one', async () => {
    const provider = await providerWith(
      ['api', 'other', 'unnamed'],
      JSON.stringify({ api: ['operator'], other: [{ role: 'viewer' }] }),
    );
    const consumer = await container();
    bed.ctrl.setGraph([
      link(consumer, provider, 'api', { role: 'operator' }),
      link(consumer, provider, 'other', { role: 'operator' }),
      // The graph's list replaces the file's for this service.
      link(consumer, provider, 'other', {
        role: 'operator',
        target: '/run/pv/services/other2.sock',
        allow: ['operator'],
      }),
      // A service the file does not name has no policy.
      link(consumer, provider, 'unnamed', { role: 'stranger' }),
    ]);
    const daemon = await bed.startDaemon();

    expect((await settledState(daemon, 'api')).state).toBe('active');
    expect((await settledState(daemon, 'unnamed')).state).toBe('active');
    const byFile = daemon.reconciler.list().find((l) => l.spec.target === '/run/pv/services/other.sock');
    const byGraph = daemon.reconciler.list().find((l) => l.spec.target === '/run/pv/services/other2.sock');
    await eventually(
      () => byFile?.state === 'failed' && byGraph?.state === 'active',
      undefined,
      'file vs graph',
    );
    expect(byFile?.error).toBe("role 'operator' is not allowed by svc/other");
  });

  it('fails every link it would govern when it is not a JSON object of lists', async () => {
    const provider = await providerWith(['api'], '["operator"]');
    const consumer = await container();
    bed.ctrl.setGraph([link(consumer, provider, 'api', { role: 'operator' })]);
    const daemon = await bed.startDaemon();
    const failed = await settledState(daemon, 'api');
    expect(failed.state).toBe('failed');
    expect(failed.error).toBe(
      'policy error: must be a JSON object mapping service names to allow lists, not an array, at ' +
        '/etc/pv-xconnect/allow.json of svc',
    );
    expect(await planted(consumer, 'api')).toBe(false);
  });
});

describe('denials in the status API', () => {
  it('shows a denied count per link in /links and as pvx_link_denied_total', async () => {
    const provider = await providerWith(['api']);
    const consumer = await container();
    bed.ctrl.setGraph([link(consumer, provider, 'api', { role: 'operator', allow: ['operator'] })]);
    const daemon = await bed.startDaemon();
    const active = await settledState(daemon, 'api');
    expect(linkStatus(active, null).denied).toBe(0);
    active.counters.denied = 3;
    const families = parseExposition(renderMetrics({ links: () => [active], graph: () => daemon.graph() }));
    const denied = families.get('pvx_link_denied_total')?.samples ?? [];
    expect(denied.map((sample) => [sample.labels.name, sample.labels.target, sample.value])).toEqual([
      ['api', '/run/pv/services/api.sock', 3],
    ]);
  });
});
