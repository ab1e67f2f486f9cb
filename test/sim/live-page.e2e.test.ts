// The live page of a running stack, in headless Chromium (Debian's, driven by playwright-core): every link of the
// showcase shows active; a provider stopped from the page's button (through the mock pv-ctrl) turns its links
// pending within two of pv-xconnect's intervals, and they come back after it is started again. Screenshots are
// written to test-artifacts/ (or $PVX_TEST_ARTIFACTS): live-page.png and live-page-provider-stopped.png.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { instancePaths, PACKAGE_ROOT, SIM_CLI } from '../../sim/paths.js';
import { DockerRuntime } from '../../sim/runtime.js';

/** The page's document, as the functions evaluated in the browser see it (the project compiles without DOM types). */
declare const document: {
  querySelectorAll(selector: string): Iterable<{ getAttribute(name: string): string | null }>;
};

const INSTANCE = `e2e-page-${process.pid}`;
/** pv-xconnect's poll interval for this stack, seconds: the bound below is two of them. */
const INTERVAL = 3;
const PROVIDER = 'echo-server';
const ARTIFACTS = process.env.PVX_TEST_ARTIFACTS ?? join(PACKAGE_ROOT, 'test-artifacts');
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function pvxSim(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [SIM_CLI, ...args], (error, stdout, stderr) => {
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A raw request to the page's server, with the headers we choose. */
function raw(url: string, method: string, headers: Record<string, string>, body = ''): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end(body);
  });
}

let url: string;
let profile: string;
let context: BrowserContext;
let page: Page;

/** Every link row of the page, as [provider, state, link key]. */
const linkStates = () =>
  page
    .locator('#links tbody tr')
    .evaluateAll((rows) =>
      rows.map((row) => [
        row.getAttribute('data-provider'),
        row.getAttribute('data-state'),
        row.getAttribute('data-link'),
      ]),
    );

/** The showcase's links whose role their provider's allow list does not name: failed for good. */
const REFUSED = ['app-guest|echo|/run/pv/services/echo.sock', 'app-gl|drm-render|/dev/dri/renderD129'];
/** The state every link of the running showcase settles in. */
const settled = (link: string | null) => (REFUSED.includes(link ?? '') ? 'failed' : 'active');

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const up = await pvxSim('up', 'showcase', '--name', INSTANCE, '--interval', String(INTERVAL), '--detach');
  expect(up.code, up.stderr).toBe(0);
  url = readFileSync(instancePaths(INSTANCE).readyFile, 'utf8').trim();
  expect(up.stderr).toContain(`live page: ${url}`);
  profile = mkdtempSync(join(tmpdir(), 'pvx-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1400, height: 1000 },
  });
  page = await context.newPage();
  await page.goto(url);
}, 180_000);

afterAll(async () => {
  await context?.close();
  await pvxSim('down', INSTANCE, '--keep-images');
  if (profile) rmSync(profile, { recursive: true, force: true });
});

describe('the live page', () => {
  it('shows every link of the showcase as active but the two its allow lists refuse, in the graph and in the table', async () => {
    await page.waitForFunction(
      () => {
        const states = [...document.querySelectorAll('#graph .link')].map((edge) =>
          edge.getAttribute('data-state'),
        );
        return (
          states.length === 10 &&
          states.filter((state) => state === 'active').length === 8 &&
          states.filter((state) => state === 'failed').length === 2
        );
      },
      undefined,
      { timeout: 60_000 },
    );
    expect(await linkStates()).toHaveLength(10);
    for (const [, state, link] of await linkStates()) expect(state, link ?? '').toBe(settled(link));
    // Colours by type, one legend entry per type drawn.
    expect(
      await page
        .locator('#legend li[data-type]')
        .evaluateAll((items) => items.map((item) => item.getAttribute('data-type')).sort()),
    ).toEqual(['dbus', 'drm', 'rest', 'unix', 'wayland']);
    await page.screenshot({ path: join(ARTIFACTS, 'live-page.png'), fullPage: true });
  }, 90_000);

  it('counts the requests an allow list refused in the denied column', async () => {
    const runtime = await DockerRuntime.connect();
    const guest = (await runtime.list(INSTANCE)).find((container) => container.name === 'app-guest');
    if (!guest) throw new Error('no app-guest container');
    const refused = await runtime.exec(
      guest.id,
      "pvcurl -s -X DELETE --unix-socket /run/pv/services/whoami.sock -o /dev/null -w '%{http_code}' http://localhost/whoami",
      10,
    );
    expect(refused.stdout).toBe('403');
    const cell = page.locator('tr[data-link="app-guest|whoami|/run/pv/services/whoami.sock"] td.denied');
    await page.waitForFunction(
      () =>
        [
          ...document.querySelectorAll(
            'tr[data-link="app-guest|whoami|/run/pv/services/whoami.sock"] td.denied',
          ),
        ]
          .map((td) => (td as unknown as { textContent: string }).textContent)
          .join() === '1',
      undefined,
      { timeout: 10_000 },
    );
    expect(await cell.getAttribute('class')).toBe('denied');
    expect(await page.locator('#links th.denied').getAttribute('class')).toBe('denied');
  });

  it("answers only its own Host, and acts only with the page's token", async () => {
    const host = new URL(url).host;
    expect(await raw(url, 'GET', { Host: 'evil.example' })).toBe(421);
    expect(await raw(`${url}api/containers/${PROVIDER}`, 'POST', { Host: host }, '{"action":"stop"}')).toBe(
      403,
    );
    expect(await raw(url, 'GET', { Host: host })).toBe(200);
  });

  it(`a provider stopped from the page: its links pending within two intervals (${2 * INTERVAL} s), back after start`, async () => {
    await page.click(`tr[data-container="${PROVIDER}"] button[data-action="stop"]`);
    await page.waitForSelector(`tr[data-container="${PROVIDER}"][data-status="STOPPED"]`, {
      timeout: 30_000,
    });
    const stopped = Date.now();
    await page.waitForFunction(
      (provider) => {
        const rows = [...document.querySelectorAll(`#links tbody tr[data-provider="${provider}"]`)];
        return rows.length > 0 && rows.every((row) => row.getAttribute('data-state') === 'pending');
      },
      PROVIDER,
      { timeout: 2 * INTERVAL * 1000 },
    );
    process.stderr.write(
      `live page: links pending ${((Date.now() - stopped) / 1000).toFixed(2)} s after the stop\n`,
    );
    // Only that provider's links: the others stay as they were.
    for (const [provider, state, link] of await linkStates())
      expect(state).toBe(provider === PROVIDER ? 'pending' : settled(link));
    await page.screenshot({ path: join(ARTIFACTS, 'live-page-provider-stopped.png'), fullPage: true });
    expect(await page.locator('#events li').allTextContents()).toEqual(
      expect.arrayContaining([expect.stringContaining(`${PROVIDER} stopped`)]),
    );

    await page.click(`tr[data-container="${PROVIDER}"] button[data-action="start"]`);
    await page.waitForFunction(
      (refused) =>
        [...document.querySelectorAll('#links tbody tr')].every(
          (row) =>
            row.getAttribute('data-state') ===
            (refused.includes(row.getAttribute('data-link') ?? '') ? 'failed' : 'active'),
        ),
      REFUSED,
      { timeout: 30_000 },
    );
    expect(await page.locator(`tr[data-container="${PROVIDER}"]`).getAttribute('data-status')).toBe(
      'STARTED',
    );
  }, 90_000);

  it("a system container's buttons are disabled, as pv-ctrl would refuse them", async () => {
    const buttons = page.locator('tr[data-container="admin"] button');
    expect(await buttons.count()).toBe(3);
    for (const button of await buttons.all()) expect(await button.isDisabled()).toBe(true);
  });
});
