/**
 * The web UI (DESIGN §9) in a real browser: Debian's chromium driven by playwright-core, against
 * a real `cairn master` (the built command) and two real `cairn agent` processes, each converging
 * a temp root. The browser reaches the master through a TCP relay the test can cut, so the run
 * page's event stream really drops mid-run and must resume with nothing lost or doubled.
 * Screenshots of each screen go to test-artifacts/ui (with UPDATE_SCREENSHOTS=1 also to docs/ui,
 * for the README).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { cairnBin, CAIRN, tempDir } from './helpers/cli.ts';
import {
  api, enrolAgent, masterJson, readEvents, startAgent, startMaster, type CairnProcess, type RunningMaster,
} from './helpers/master-processes.ts';
import { waitUntil } from './helpers/wait.ts';

const CHROMIUM = '/usr/bin/chromium';
const UI_BUILT = resolve(import.meta.dirname, '../dist/ui/index.html');
const skip = !existsSync(CHROMIUM) ? `LOUD SKIP: ${CHROMIUM} is missing (scripts/install.sh installs Debian's chromium)`
  : !existsSync(CAIRN) || !existsSync(UI_BUILT) ? `LOUD SKIP: ${CAIRN} or dist/ui is missing (npm run build makes them)` : false;
if (skip) process.stderr.write(`\n*** ${skip} ***\n\n`);

const HANG = { timeout: 180_000 };
const ARTIFACTS = resolve(import.meta.dirname, '../test-artifacts/ui');
const DOCS = resolve(import.meta.dirname, '../docs/ui');
/** The screens the README shows (docs/ui): the rest stay test artifacts. */
const README_SHOTS = new Set(['targets', 'run', 'target', 'runs', 'revisions', 'certificates-and-tokens']);

/** A TCP relay to the master's API port: `cut()` drops every connection and refuses new ones until `resume()`. */
class Relay {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private cutOff = false;
  port = 0;

  constructor(private readonly to: number) {
    this.server = createServer((client) => {
      if (this.cutOff) return client.destroy();
      const upstream = createConnection({ host: '127.0.0.1', port: this.to });
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((done) => this.server.listen(0, '127.0.0.1', done));
    this.port = (this.server.address() as AddressInfo).port;
  }

  cut(): void {
    this.cutOff = true;
    for (const s of this.sockets) s.destroy();
  }

  resume(): void {
    this.cutOff = false;
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((done) => this.server.close(() => done()));
  }
}

describe('the web UI in headless chromium (real master, real agents)', { skip }, () => {
  let dir: string;
  let master: RunningMaster;
  let relay: Relay;
  let browser: Browser;
  let adminContext: BrowserContext;
  let page: Page;
  let base: string;
  const tokens: Record<'admin' | 'operator' | 'viewer', string> = { admin: '', operator: '', viewer: '' };
  const agents = new Map<string, CairnProcess>();
  const pageProblems: string[] = [];
  const root = (name: string) => join(dir, `root-${name}`);
  const tls = (name: string) => join(dir, `tls-${name}`);
  let site: string;

  const shot = async (p: Page, name: string) => {
    mkdirSync(ARTIFACTS, { recursive: true });
    const file = join(ARTIFACTS, `${name}.png`);
    await p.screenshot({ path: file, fullPage: true });
    if (process.env.UPDATE_SCREENSHOTS === '1' && README_SHOTS.has(name)) {
      mkdirSync(DOCS, { recursive: true });
      copyFileSync(file, join(DOCS, `${name}.png`));
    }
  };

  const writeSite = (greeting: string) => {
    const target = (name: string, run: string) =>
      `  ${name}:\n    executor: agent\n    state_dir: ${join(dir, `state-${name}`)}\n    vars: { root: ${root(name)} }\n    run: [${run}]\n`;
    // Groups: both in "web" (matched), each in one of "front" and "back" (listed).
    const groups = 'groups:\n  web: { match: "web*" }\n  front: { targets: [web1] }\n  back: { targets: [web2] }\n';
    writeFileSync(join(site, 'cairn.yaml'), `vars:\n  greeting: ${greeting}\n${groups}targets:\n${target('web1', 'motd, gate')}${target('web2', 'motd')}`);
    writeFileSync(join(site, 'states/motd.yaml'), 'motd:\n  - file: <%= it.vars.root %>/motd\n    content: "<%= it.vars.greeting %>\\n"\n  - file: <%= it.vars.root %>/kept\n    content: "kept\\n"\n'
      + '  - file: <%= it.vars.root %>/secret\n    content: "s3cret-<%= it.vars.greeting %>\\n"\n    sensitive: true\n');
    // A node that waits, part way through the run, until the test lets it go.
    writeFileSync(join(site, 'states/gate.yaml'), 'gate:\n  - exec: "touch <%= it.vars.root %>/started; while [ ! -e <%= it.vars.root %>/go ]; do sleep 0.05; done"\n    id: wait\n'
      + '  - file: <%= it.vars.root %>/after-gate\n    content: "after\\n"\n    require: wait\n');
    const pushed = cairnBin(['push', '--site', site, '--store', master.store]);
    assert.equal(pushed.status, 0, pushed.stderr);
  };

  const login = async (p: Page, token: string) => {
    await p.goto(`${base}/`);
    await p.getByLabel('API token').fill(token);
    await p.getByRole('button', { name: 'Log in', exact: true }).click();
    await p.locator('#me').waitFor();
  };

  const watch = (p: Page) => {
    p.on('console', (m) => {
      if (m.type() === 'error' && !/net::ERR_|Failed to load resource/.test(m.text())) pageProblems.push(m.text());
    });
    p.on('pageerror', (e) => pageProblems.push(e.message));
  };

  before(async () => {
    dir = tempDir('cairn-ui-');
    // Stale after 2 hours: the stale test moves the page's clock, not the master's records.
    master = await startMaster(dir, undefined, undefined, { extraArgs: ['--stale-after', '2h'] });
    for (const role of ['admin', 'operator', 'viewer'] as const) {
      tokens[role] = masterJson<{ token: string }>(master, ['api-token', 'create', '--name', `${role}-person`, '--role', role]).token;
    }
    for (const name of ['web1', 'web2']) {
      mkdirSync(root(name), { recursive: true });
      enrolAgent(master, name, tls(name));
      agents.set(name, await startAgent(master, tls(name), join(dir, `work-${name}`)));
    }
    site = join(dir, 'site');
    mkdirSync(join(site, 'states'), { recursive: true });
    writeSite('first');
    // A first apply of both, through the API: the UI's apply later has unchanged nodes beside changed ones.
    writeFileSync(join(root('web1'), 'go'), '');
    const first = await api(master, tokens.operator, 'POST', '/api/v1/runs', { mode: 'apply', targets: ['web1', 'web2'] });
    assert.equal(first.status, 202, JSON.stringify(first.json));
    await readEvents(master, tokens.viewer, (first.json as { id: string }).id, undefined, (e) => e.event === 'run' && e.data.state === 'finished');
    rmSync(join(root('web1'), 'go'));
    rmSync(join(root('web1'), 'started'));
    writeSite('hello');

    relay = new Relay(Number(new URL(master.apiUrl).port));
    await relay.start();
    base = `https://127.0.0.1:${relay.port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    adminContext = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
    page = await adminContext.newPage();
    watch(page);
  });

  after(async () => {
    await browser?.close();
    await relay?.stop();
    for (const agent of agents.values()) await agent.stop();
    await master?.process.stop();
  });

  test('the page is served under a strict CSP; a token logs in (session cookie); both targets are listed', HANG, async () => {
    const res = await page.goto(`${base}/`);
    assert.equal(res?.url(), `${base}/ui`);
    const csp = res?.headers()['content-security-policy'] ?? '';
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self';/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    await page.getByLabel('API token').waitFor();
    await shot(page, 'login');
    await page.getByLabel('API token').fill('cairn-api.0000000000000000.wrongwrongwrongwrongwrongwrongwrongwrongwro');
    await page.getByRole('button', { name: 'Log in', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'unknown or revoked' }).waitFor();
    await login(page, tokens.admin);
    const cookie = (await adminContext.cookies()).find((c) => c.name === 'cairn_session');
    assert.ok(cookie, 'a session cookie');
    assert.deepEqual([cookie.httpOnly, cookie.secure, cookie.sameSite], [true, true, 'Strict']);
    await page.locator('tr[data-target="web1"]').waitFor();
    await page.locator('tr[data-target="web2"]').waitFor();
    for (const name of ['web1', 'web2']) {
      const row = page.locator(`tr[data-target="${name}"]`);
      assert.doesNotMatch(await row.innerText(), /disconnected/);
      assert.match(await row.innerText(), /connected/);
      assert.equal(await row.getAttribute('data-status'), 'changed', 'the first apply changed both');
      // The last run came from the revision pushed before the second push: behind the newest.
      assert.match(await row.innerText(), /behind/);
    }
    await shot(page, 'targets');
    // Search and the status filter.
    await page.getByLabel('Search').fill('web2');
    assert.equal(await page.locator('tbody tr[data-target]').count(), 1);
    await page.getByLabel('Search').fill('');
    await page.locator('#status-filter').selectOption('failed');
    assert.equal(await page.locator('tbody tr[data-target]').count(), 0);
    await page.locator('#status-filter').selectOption('changed');
    assert.equal(await page.locator('tbody tr[data-target]').count(), 2);
    await page.locator('#status-filter').selectOption('all');
  });

  test("each target's groups come from the pushed revision; the group filter shows a group's targets", HANG, async () => {
    await page.goto(`${base}/ui#/targets`);
    await page.locator('#group-filter').waitFor();
    assert.equal(await page.locator('tr[data-target="web1"] td.groups').innerText(), 'web, front');
    assert.equal(await page.locator('tr[data-target="web2"] td.groups').innerText(), 'web, back');
    const shown = () => page.locator('tbody tr[data-target]').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.target));
    await page.locator('#group-filter').selectOption('back');
    assert.deepEqual(await shown(), ['web2']);
    await page.locator('#group-filter').selectOption('front');
    assert.deepEqual(await shown(), ['web1']);
    await page.locator('#group-filter').selectOption('web');
    assert.deepEqual(await shown(), ['web1', 'web2']);
    await page.locator('#group-filter').selectOption('');
    const listed = (await api(master, tokens.viewer, 'GET', '/api/v1/targets')).json as { targets: { name: string; groups: string[] }[] };
    assert.deepEqual(listed.targets.map((t) => [t.name, t.groups]).sort(), [['web1', ['web', 'front']], ['web2', ['web', 'back']]]);
  });

  test('a last run older than --stale-after (2h here) shows stale with its age; a younger one keeps its status', HANG, async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const p = await context.newPage();
    watch(p);
    // The page's clock only (Date.now in the page): the master and its records are left as they are.
    const now = Date.now();
    await p.clock.setFixedTime(now + 3_600_000);
    await login(p, tokens.viewer);
    const row = p.locator('tr[data-target="web1"]');
    await row.waitFor();
    assert.equal(await row.getAttribute('data-status'), 'changed', 'an hour old: not stale yet');
    assert.match(await row.innerText(), /\b1 h ago/);
    await p.clock.setFixedTime(now + 3 * 3_600_000);
    await p.reload();
    await row.waitFor();
    assert.equal(await row.getAttribute('data-status'), 'stale');
    assert.match(await row.innerText(), /stale\s+3 h ago/);
    await p.locator('#status-filter').selectOption('stale');
    assert.equal(await p.locator('tbody tr[data-target]').count(), 2);
    await shot(p, 'targets-stale');
    await context.close();
  });

  test('apply from the UI: nodes arrive live; the stream cut mid-run resumes with nothing lost or doubled; a diff opens; the filter hides unchanged', HANG, async () => {
    await page.goto(`${base}/ui#/targets/web1`);
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForURL(/#\/runs\//);
    const id = decodeURIComponent(new URL(page.url()).hash.split('/')[2]!);
    // Live: the motd node shows while the run is held at the gate (it cannot have finished).
    const motd = page.locator(`tr[data-ref="file:${root('web1')}/motd"]`);
    await motd.waitFor();
    await waitUntil(() => existsSync(join(root('web1'), 'started')), 'the gate node to start');
    assert.equal(await page.locator('#run-state').innerText(), 'running');
    assert.equal(await motd.getAttribute('data-status'), 'changed');
    assert.equal(await page.locator(`tr[data-ref="file:${root('web1')}/after-gate"]`).count(), 0);

    // Cut the page's connection; the rest of the run happens while it is away.
    relay.cut();
    await page.locator('#stream[data-state="reconnecting"]').waitFor();
    writeFileSync(join(root('web1'), 'go'), '');
    await waitUntil(async () => ((await api(master, tokens.viewer, 'GET', `/api/v1/runs/${id}`)).json as { state: string }).state === 'finished', 'the run to finish');
    relay.resume();
    await page.locator('#stream[data-state="finished"]').waitFor();
    assert.match(await page.locator('#stream').innerText(), /reconnected [1-9]/);

    const whole = await readEvents(master, tokens.viewer, id, undefined, (e) => e.event === 'run' && e.data.state === 'finished');
    const received = (await page.locator('#stream').getAttribute('data-seqs'))!.split(',').map(Number);
    assert.deepEqual(received, whole.map((e) => e.id), 'every event once, in order, across the cut');
    const rows = await page.locator('tr[data-seq]').evaluateAll((els) => els.map((e) => Number((e as HTMLElement).dataset.seq)));
    assert.deepEqual(rows, whole.filter((e) => e.event === 'node').map((e) => e.id), 'each node row once');
    assert.equal(await page.locator('#run-state').innerText(), 'finished');
    const count = async (k: string) => Number((await page.locator(`[data-count="${k}"]`).innerText()).split(' ')[0]);
    assert.deepEqual([await count('changed'), await count('unchanged'), await count('failed')], [3, 2, 0]);
    // A sensitive file changed too: its content is never on the page (DESIGN §5.13).
    const secret = page.locator(`tr[data-ref="file:${root('web1')}/secret"]`);
    assert.equal(await secret.getAttribute('data-status'), 'changed');
    assert.equal((await page.content()).includes('s3cret'), false, 'no sensitive content in the run page');

    // The motd's diff: what the file held, what it holds now.
    await motd.getByText('Diff').click();
    const diff = await motd.locator('pre.diff').innerText();
    assert.match(diff, /^-first$/m);
    assert.match(diff, /^\+hello$/m);
    await shot(page, 'run');
    await page.getByLabel('Changed / failed only').check();
    assert.equal(await page.locator(`tr[data-ref="file:${root('web1')}/kept"]`).isHidden(), true);
    assert.equal(await motd.isVisible(), true);
    await page.getByLabel('Changed / failed only').uncheck();
    assert.equal(await page.locator(`tr[data-ref="file:${root('web1')}/kept"]`).isVisible(), true);
  });

  test('a target: facts, run history, certificate; runs history filtered by target and changes', HANG, async () => {
    await page.goto(`${base}/ui#/targets/web2`);
    await page.locator('#certificate').waitFor();
    assert.match(await page.locator('#certificate').innerText(), /valid serial [0-9A-F]+, expires \d{4}-\d\d-\d\d \(\d+ days\)/);
    assert.match(await page.locator('dl.facts').innerText(), /hostname/);
    assert.equal(await page.locator('tr[data-run]').count(), 1);
    await shot(page, 'target');

    // Only the hash changes: wait for the runs screen itself, not rows the target page also had.
    await page.goto(`${base}/ui#/runs`);
    await page.locator('#runs-target').waitFor();
    assert.equal(await page.locator('tr[data-run]').count(), 2);
    await page.locator('#runs-target').selectOption('web2');
    assert.equal(await page.locator('tr[data-run]').count(), 1);
    await page.locator('#runs-target').selectOption('');
    await page.locator('#runs-status').selectOption('failed');
    assert.equal(await page.locator('tr[data-run]').count(), 0);
    await page.locator('#runs-status').selectOption('all');
    await page.getByLabel('Had changes').check();
    assert.equal(await page.locator('tr[data-run]').count(), 2);
    await shot(page, 'runs');
  });

  test('revisions: the diff between two pushed revisions', HANG, async () => {
    const { revisions } = (await api(master, tokens.viewer, 'GET', '/api/v1/revisions')).json as { revisions: { id: string }[] };
    assert.equal(revisions.length, 2);
    await page.goto(`${base}/ui#/revisions`);
    await page.locator('#rev-from').selectOption(revisions[1]!.id);
    await page.locator('#rev-to').selectOption(revisions[0]!.id);
    await page.getByRole('button', { name: 'Show diff' }).click();
    const file = page.locator('section[data-path="cairn.yaml"] pre.diff');
    await file.waitFor();
    assert.match(await file.innerText(), /^- {2}greeting: first$/m);
    assert.match(await file.innerText(), /^\+ {2}greeting: hello$/m);
    assert.equal(await page.locator('section[data-path="states/motd.yaml"]').count(), 0, 'only what changed');
    await shot(page, 'revisions');
  });

  test('certificates and tokens (admin): a one-time enrolment token is shown once', HANG, async () => {
    await page.goto(`${base}/ui#/admin`);
    await page.locator('tr[data-serial]').first().waitFor();
    assert.equal(await page.locator('tr[data-serial]').count(), 2);
    await page.getByLabel('Agent name').fill('web3');
    await page.getByRole('button', { name: 'Create token' }).click();
    const secret = await page.locator('#new-token').innerText();
    assert.match(secret, /^cairn-enrol\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    const id = secret.split('.')[1]!;
    await page.locator(`tr[data-token="${id}"]`).waitFor();
    await shot(page, 'certificates-and-tokens');
    await page.reload();
    await page.locator(`tr[data-token="${id}"]`).waitFor();
    assert.equal((await page.content()).includes(secret), false, 'the token is not shown again');
  });

  test('a user logs in with a name and password (cairn master user add, password on stdin); a wrong one is refused', HANG, async () => {
    const added = spawnSync(process.execPath, [CAIRN, 'master', 'user', 'add', 'olga', '--role', 'operator', '--store', master.store], { input: 'olga-password-1\n', encoding: 'utf8' });
    assert.equal(added.status, 0, added.stderr);
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const p = await context.newPage();
    watch(p);
    await p.goto(`${base}/ui`);
    await p.getByLabel('User', { exact: true }).fill('olga');
    await p.getByLabel('Password', { exact: true }).fill('not-olgas-password');
    await p.getByRole('button', { name: 'Log in with password' }).click();
    await p.getByRole('alert').filter({ hasText: 'unknown user or wrong password' }).waitFor();
    assert.equal(await p.getByLabel('Password', { exact: true }).inputValue(), '', 'a refused password is cleared');
    await p.getByLabel('Password', { exact: true }).fill('olga-password-1');
    await p.getByRole('button', { name: 'Log in with password' }).click();
    await p.locator('#me').waitFor();
    assert.match(await p.locator('#me').innerText(), /olga/);
    const cookie = (await context.cookies()).find((c) => c.name === 'cairn_session');
    assert.deepEqual([cookie?.httpOnly, cookie?.secure, cookie?.sameSite], [true, true, 'Strict']);
    await p.locator('tr[data-target="web1"]').waitFor();
    // An operator: the target page has Plan and Apply.
    await p.goto(`${base}/ui#/targets/web2`);
    await p.getByRole('button', { name: 'Apply' }).waitFor();
    await shot(p, 'login-with-password');
    await context.close();
  });

  test('a viewer sees no Plan or Apply, and the server refuses the run the button would start', HANG, async () => {
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const viewer = await context.newPage();
    watch(viewer);
    // By keyboard alone: the token field has the focus, Enter logs in, Tab reaches a target's link.
    await viewer.goto(`${base}/ui`);
    await viewer.locator('#token:focus').waitFor();
    await viewer.keyboard.type(tokens.viewer);
    await viewer.keyboard.press('Enter');
    await viewer.locator('tr[data-target="web1"]').waitFor();
    for (let i = 0; i < 20 && (await viewer.evaluate(() => document.activeElement?.textContent)) !== 'web1'; i++) await viewer.keyboard.press('Tab');
    await viewer.keyboard.press('Enter');
    await viewer.waitForURL(/#\/targets\/web1$/);
    await viewer.getByText('Plan and Apply need the operator role.').waitFor();
    assert.equal(await viewer.getByRole('button', { name: 'Apply' }).count(), 0);
    assert.equal(await viewer.locator('#revoke').count(), 0);
    assert.equal(await viewer.locator('#nav-admin').isHidden(), true);
    const status = await viewer.evaluate(async () => (await fetch('/api/v1/runs', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ mode: 'apply', targets: ['web1'] }),
    })).status);
    assert.equal(status, 403);
    const admin = await viewer.evaluate(async () => (await fetch('/api/v1/certificates')).status);
    assert.equal(admin, 403);
    await shot(viewer, 'target-as-viewer');
    await context.close();
  });

  test('Plan from the UI shows what would change and changes nothing; Cancel stops a run in flight', HANG, async () => {
    await page.goto(`${base}/ui#/targets/web2`);
    await page.getByRole('button', { name: 'Plan' }).click();
    await page.locator('#stream[data-state="finished"]').waitFor();
    assert.equal(Number((await page.locator('[data-count="would-change"]').innerText()).split(' ')[0]), 2, 'motd and the secret');
    assert.equal(await page.locator(`tr[data-ref="file:${root('web2')}/motd"]`).getAttribute('data-status'), 'would-change');
    assert.equal(readFileSync(join(root('web2'), 'motd'), 'utf8'), 'first\n');

    rmSync(join(root('web1'), 'go'));
    rmSync(join(root('web1'), 'started'));
    await page.goto(`${base}/ui#/targets/web1`);
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.waitForURL(/#\/runs\//);
    await waitUntil(() => existsSync(join(root('web1'), 'started')), 'the gate node to start');
    // The gate opens only once the master has taken the cancel.
    const cancelled = page.waitForResponse((r) => r.url().endsWith('/cancel') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Cancel run' }).click();
    assert.equal((await cancelled).status(), 202);
    writeFileSync(join(root('web1'), 'go'), '');
    await page.locator('#stream[data-state="finished"]').waitFor();
    assert.equal(await page.locator('#run-state').innerText(), 'cancelled');
    const afterGate = page.locator(`tr[data-ref="file:${root('web1')}/after-gate"]`);
    assert.equal(await afterGate.getAttribute('data-status'), 'skipped');
    assert.match(await afterGate.innerText(), /run cancelled/);
    assert.equal(await page.getByRole('button', { name: 'Cancel run' }).count(), 0, 'no Cancel once finished');
  });

  test('revoking an agent from its page: it is cut off and shows disconnected', HANG, async () => {
    await page.goto(`${base}/ui#/targets/web2`);
    await page.locator('#revoke').waitFor();
    page.once('dialog', (d) => void d.accept());
    await page.locator('#revoke').click();
    assert.equal(await agents.get('web2')!.exited, 3, 'the revoked agent is refused and ends');
    await page.locator('#certificate .badge.revoked').waitFor();
    await waitUntil(async () => ((await api(master, tokens.viewer, 'GET', '/api/v1/targets/web2')).json as { connected: boolean }).connected === false, 'the master to see web2 go');
    await page.goto(`${base}/ui#/targets`);
    const row = page.locator('tr[data-target="web2"]');
    await row.waitFor();
    assert.match(await row.innerText(), /disconnected/);
    assert.match(await page.locator('tr[data-target="web1"]').innerText(), /\bconnected/);
    await page.locator('#connection-filter').selectOption('disconnected');
    assert.equal(await page.locator('tbody tr[data-target]').count(), 1);
    await page.locator('#connection-filter').selectOption('all');
    await shot(page, 'targets-after-revoke');
    assert.deepEqual(pageProblems, [], 'no script errors or CSP violations on any page');
  });
});
