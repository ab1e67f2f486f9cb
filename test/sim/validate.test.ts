// `pvx-sim validate` and `pvx-sim graph` on stacks written to a temporary folder, `status` and `down` of a stack
// that is not up (no container is started), through the built CLI (dist/sim/cli.js: `npm test` compiles first).
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LINK_COLOURS } from '../../sim/graph-picture.js';
import { SIM_CLI } from '../../sim/paths.js';
import { loadStack } from '../../sim/stack.js';

let work: string;

function pvxSim(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SIM_CLI, ...args], (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Writes a stack: container → file → content (objects become JSON). */
function writeStack(name: string, files: Record<string, Record<string, unknown>>): string {
  const dir = join(work, name);
  for (const [container, entries] of Object.entries(files)) {
    const containerDir = join(dir, container);
    mkdirSync(containerDir, { recursive: true });
    writeFileSync(join(containerDir, 'start'), '#!/bin/sh\nexec sleep infinity\n');
    chmodSync(join(containerDir, 'start'), 0o755);
    for (const [file, content] of Object.entries(entries)) {
      writeFileSync(join(dir, file.includes('/') ? file : join(container, file)), JSON.stringify(content));
    }
  }
  return dir;
}

const busProvider = {
  'services.json': {
    '#spec': 'service-manifest-xconnect@1',
    services: [{ name: 'system-bus', type: 'dbus', socket: '/run/dbus/system_bus_socket' }],
  },
};

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'pvx-validate-'));
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('pvx-sim validate', () => {
  it("reports a missing required provider in upstream's words and exits 1", async () => {
    const dir = writeStack('missing', {
      provider: busProvider,
      app: {
        'args.json': {
          PV_SERVICES_REQUIRED: [{ name: 'network-manager', type: 'rest' }],
          PV_SERVICES_OPTIONAL: [{ name: 'wayland-0', type: 'wayland' }],
        },
      },
    });
    const result = await pvxSim('validate', dir);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe(
      "error: app/args.json: PV_SERVICES_REQUIRED[0]: required service 'network-manager' for platform 'app' not found\n" +
        'missing: 1 problem(s)\n',
    );
  });

  it('names the file and JSON path of manifest and checks errors', async () => {
    const dir = writeStack('broken', {
      provider: { 'services.json': [{ name: 'x', type: 'unix', socket: 'relative.sock' }] },
      app: { 'run.json': { '#spec': 'service-manifest-run@1', services: { required: 'x' } } },
    });
    writeFileSync(
      join(dir, 'checks.json'),
      JSON.stringify({ checks: [{ name: 'c', in: 'nobody', run: 'true' }] }),
    );
    const result = await pvxSim('validate', dir);
    expect(result.code).toBe(1);
    expect(result.stdout.split('\n').filter((line) => line.startsWith('error: '))).toEqual([
      'error: app/run.json: services.required: must be an array (got "x")',
      'error: provider/services.json: services[0].socket: must be an absolute path',
      "error: checks.json: checks[0].in: no container 'nobody' in the stack",
    ]);
  });

  it('keeps every entry of a multi-entry requirement array: one link each', async () => {
    const roles = ['operator', 'admin', 'viewer', 'guest'];
    const dir = writeStack('multi', {
      provider: busProvider,
      app: {
        'run.json': {
          '#spec': 'service-manifest-run@1',
          services: {
            required: roles.map((role) => ({
              name: 'system-bus',
              type: 'dbus',
              role,
              target: `/run/pv/${role}.sock`,
            })),
          },
        },
      },
    });
    const result = await pvxSim('validate', dir);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('multi: ok (2 containers, 4 links, 0 checks)\n');
    expect(loadStack(dir).graph.links.map((link) => [link.role, link.target])).toEqual(
      roles.map((role) => [role, `/run/pv/${role}.sock`]),
    );
    const dot = await pvxSim('graph', dir);
    expect(dot.stdout.match(/"app" -> "provider"/g)).toHaveLength(4);
    const mermaid = await pvxSim('graph', dir, '--format', 'mermaid');
    expect(mermaid.stdout).toContain('c0 -->|"system-bus (dbus, operator)"| c1');
  });

  it('warns about misspelled keys with file, JSON path and a suggestion, and still passes', async () => {
    const dir = writeStack('typos', {
      provider: busProvider,
      app: {
        'run.json': {
          '#spec': 'service-manifest-run@1',
          services: { requried: [{ name: 'system-bus', tagret: '/run/x.sock' }] },
        },
      },
    });
    writeFileSync(
      join(dir, 'checks.json'),
      JSON.stringify({ checks: [{ name: 'c', in: 'app', run: 'true', tiemout: 3 }] }),
    );
    const result = await pvxSim('validate', dir);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      [
        "warning: app/run.json: services.requried: unknown key (did you mean 'required'?)",
        "warning: checks.json: checks[0].tiemout: unknown key (did you mean 'timeout'?)",
        'typos: ok (2 containers, 0 links, 1 checks, 2 warning(s))',
        '',
      ].join('\n'),
    );
  });

  it('reports bad JSON by line and column, and a program that cannot run', async () => {
    const dir = writeStack('broken-json', { provider: busProvider, app: {} });
    writeFileSync(
      join(dir, 'app', 'run.json'),
      '{\n  "#spec": "service-manifest-run@1",\n  "name": "app"\n  "group": "app"\n}\n',
    );
    chmodSync(join(dir, 'provider', 'start'), 0o644);
    const result = await pvxSim('validate', dir);
    expect(result.code).toBe(1);
    expect(result.stdout.split('\n').filter((line) => line.startsWith('error: '))).toEqual([
      "error: app/run.json: not valid JSON: line 4, column 3: expected ',' or '}' after a value in an object, found '\"'",
      'error: provider/start: not executable (chmod +x provider/start)',
    ]);
  });

  it('the shipped stacks are valid, without a warning', async () => {
    for (const stack of ['showcase', 'upstream-examples', 'hosted-bus']) {
      const result = await pvxSim('validate', stack);
      expect({ stack, code: result.code, out: result.stdout }).toMatchObject({ stack, code: 0 });
      expect(result.stdout).not.toContain('warning');
    }
  });
});

describe('pvx-sim graph', () => {
  it('colours each link type and draws a legend of the types in the SVG (Graphviz)', async () => {
    const result = await pvxSim('graph', 'showcase', '--format', 'svg');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^<\?xml|^<svg|<svg /);
    for (const [type, colour] of Object.entries(LINK_COLOURS)) {
      expect(result.stdout, type).toContain(`stroke="${colour}"`);
      expect(result.stdout, type).toContain(`>${type}</text>`);
    }
    expect(result.stdout).toContain('>link types</text>');
  });

  it('mermaid gets the colours too', async () => {
    const result = await pvxSim('graph', 'hosted-bus', '--format', 'mermaid');
    expect(result.stdout).toContain(`linkStyle 0 stroke:${LINK_COLOURS.dbus}`);
    expect(result.stdout).toContain('subgraph legend["link types"]');
  });
});

describe('pvx-sim status and down of a stack that is not up', () => {
  it('status names the instance and exits 1', async () => {
    const result = await pvxSim('status', `no-such-stack-${process.pid}`);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(`^pvx-sim: status: no stack instance 'no-such-stack-${process.pid}' is up \\(`),
    );
  });

  it('down names the instance and exits 1 (Docker is asked, nothing is started)', async () => {
    const result = await pvxSim('down', `no-such-stack-${process.pid}`, '--keep-images');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(`^pvx-sim: down: no stack instance 'no-such-stack-${process.pid}' on this host \\(`),
    );
  });
});
