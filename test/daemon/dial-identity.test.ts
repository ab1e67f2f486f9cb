// Who unix and rest links dial their provider as (root, real namespaces): root by default, as upstream does, or the
// role's uid, gid and groups from the provider's own passwd and group with `credentials: role`. The provider reads
// them with SO_PEERCRED and SO_PEERGROUPS, through a unix link with a raw client and through a rest link with curl.
import { describe, expect, it } from 'vitest';
import type { FdSocket } from '../../native/fd-socket.js';
import { type Container, startContainer } from '../../testkit/container.js';
import {
  connectFrom,
  eventually,
  type GraphEntry,
  graphEntry,
  readToEnd,
  startProvider,
} from '../../testkit/mesh.js';
import { daemonTestbed } from '../../testkit/testbed.js';

const bed = daemonTestbed('dial-identity', 200);

/** The provider's accounts: the role `operator` is uid 1200, primary group 1200, also in `ops` (1300). */
const ACCOUNTS = [
  "echo 'operator:x:1200:1200::/:/bin/false' >> /etc/passwd",
  "echo 'operator:x:1200:' >> /etc/group",
  "echo 'ops:x:1300:operator' >> /etc/group",
].join('\n');

const ROOT = { uid: 0, gid: 0 };
const OPERATOR = { uid: 1200, gid: 1200, groups: [1200, 1300] };

interface Seen {
  uid: number;
  gid: number;
  groups: number[];
}

function credentialsOf(socket: FdSocket): Seen {
  const { uid, gid } = socket.peerCred();
  return { uid, gid, groups: [...socket.peerGroups()].sort((a, b) => a - b) };
}

/** Answers every connection with its peer's credentials as JSON, then closes. */
function rawProbe(socket: FdSocket): void {
  socket.write(Buffer.from(JSON.stringify(credentialsOf(socket))));
  socket.end();
}

/** Answers the first HTTP request of every connection with its peer's credentials as a JSON body, then closes. */
function httpProbe(socket: FdSocket): void {
  let head = '';
  socket.on('data', ({ data }: { data: Buffer }) => {
    head += data.toString('latin1');
    if (!head.includes('\r\n\r\n')) return;
    const body = JSON.stringify(credentialsOf(socket));
    socket.write(
      Buffer.from(
        `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
      ),
    );
    socket.end();
  });
}

async function containers(): Promise<{ provider: Container; consumer: Container }> {
  const [provider, consumer] = await Promise.all([
    startContainer({ privateEtc: true, setup: ACCOUNTS }),
    startContainer(),
  ]);
  bed.defer(() => Promise.all([provider.stop(), consumer.stop()]));
  for (const [path, probe] of [
    ['/run/p/raw.sock', rawProbe],
    ['/run/p/http.sock', httpProbe],
  ] as const) {
    const served = await startProvider(provider.pid, path, probe);
    bed.defer(() => served.close());
  }
  return { provider, consumer };
}

function entries(consumer: Container, provider: Container, extra: Partial<GraphEntry>): GraphEntry[] {
  return [
    graphEntry('unix', consumer, provider, {
      name: 'raw',
      socket: '/run/p/raw.sock',
      role: 'operator',
      ...extra,
    }),
    graphEntry('rest', consumer, provider, {
      name: 'http',
      socket: '/run/p/http.sock',
      role: 'operator',
      ...extra,
    }),
  ];
}

async function seenThroughUnix(consumer: Container): Promise<Seen> {
  const socket = await connectFrom(consumer.pid, '/run/pv/services/raw.sock');
  return JSON.parse((await readToEnd(socket)).data.toString()) as Seen;
}

async function seenThroughRest(consumer: Container): Promise<Seen> {
  const result = await consumer.exec([
    'curl',
    '-sS',
    '--fail-with-body',
    '--unix-socket',
    '/run/pv/services/http.sock',
    'http://http/whoami',
  ]);
  if (result.code !== 0) throw new Error(`curl exited ${result.code}: ${result.stderr}`);
  return JSON.parse(result.stdout) as Seen;
}

async function bothActive(): Promise<void> {
  const daemon = await bed.startDaemon();
  await eventually(
    () => daemon.reconciler.list().every((link) => link.state === 'active'),
    undefined,
    'both links active',
  );
  expect(daemon.reconciler.list()).toHaveLength(2);
}

describe('the identity unix and rest links dial their provider as', () => {
  it('is root by default, as upstream dials', async () => {
    const { provider, consumer } = await containers();
    bed.ctrl.setGraph(entries(consumer, provider, {}));
    await bothActive();
    expect(await seenThroughUnix(consumer)).toMatchObject(ROOT);
    expect(await seenThroughRest(consumer)).toMatchObject(ROOT);
  });

  it("is the role's uid, gid and groups from the provider's passwd and group with credentials: role", async () => {
    const { provider, consumer } = await containers();
    bed.ctrl.setGraph(entries(consumer, provider, { credentials: 'role' }));
    await bothActive();
    expect(await seenThroughUnix(consumer)).toEqual(OPERATOR);
    expect(await seenThroughRest(consumer)).toEqual(OPERATOR);
  });
});
