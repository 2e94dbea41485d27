/**
 * `package_repository` (apt) and `package` holds on real Debian hosts (the test lab,
 * test/helpers/lab.ts), converged by the `cairn` command over SSH. A second apt repository,
 * signed with a key made for this test, is served from this machine over HTTP: it has a package
 * (cairn-extra) that only it has, so a package that installs proves the repository works.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { after, before, test } from 'node:test';
import type { TargetReport } from '../src/engine/engine.ts';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli } from './helpers/cli.ts';
import { labUnavailable, startLab, type Lab, type LabHost, targetYaml } from './helpers/lab.ts';

/** The tools this machine needs to build and sign the second repository. */
function missingTools(): string | undefined {
  for (const tool of ['gpg', 'dpkg-deb', 'dpkg-scanpackages']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'pipe' });
    } catch {
      return `${tool} is not installed (scripts/install.sh installs gnupg and dpkg-dev)`;
    }
  }
  return undefined;
}

interface SignedRepo {
  dir: string;
  /** The public key, ASCII-armoured. */
  key: string;
}

/**
 * A flat apt repository (`Suites: ./`) with cairn-extra 1.0-1 and cairn-dummy 3.0-1, its Release signed (InRelease and
 * Release.gpg) with a key generated here, in a GNUPGHOME of its own.
 */
function buildSignedRepo(): SignedRepo {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-extra-repo-'));
  const home = join(dir, '.gnupg');
  mkdirSync(home, { mode: 0o700 });
  const gpg = (...args: string[]) => execFileSync('gpg', ['--homedir', home, '--batch', '--pinentry-mode', 'loopback', '--passphrase', '', ...args], { stdio: 'pipe' });
  gpg('--quick-gen-key', 'Cairn test repository <repo@cairn.invalid>', 'ed25519', 'sign', 'never');

  const deb = (name: string, version: string, description: string) => {
    const build = join(dir, '.build');
    mkdirSync(join(build, 'DEBIAN'), { recursive: true });
    mkdirSync(join(build, `usr/share/${name}`), { recursive: true });
    writeFileSync(join(build, `usr/share/${name}/version`), `${version}\n`);
    writeFileSync(join(build, 'DEBIAN/control'),
      `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: Cairn tests <tests@cairn.invalid>\nSection: misc\nPriority: optional\nDescription: ${description}\n`);
    execFileSync('dpkg-deb', ['--root-owner-group', '-b', build, join(dir, `${name}_${version}_all.deb`)], { stdio: 'pipe' });
    rmSync(build, { recursive: true });
  };
  deb('cairn-extra', '1.0-1', 'only in the second repository');
  // Newer than the lab repository's 1.0-1 and 2.0-1 (the same files: a plain upgrade).
  deb('cairn-dummy', '3.0-1', 'newer in the second repository');

  const packages = execFileSync('dpkg-scanpackages', ['.', '/dev/null'], { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] });
  writeFileSync(join(dir, 'Packages'), packages);
  const entry = (algo: string) => `${createHash(algo).update(packages).digest('hex')} ${packages.length} Packages`;
  writeFileSync(join(dir, 'Release'), [
    'Origin: cairn-test', 'Label: cairn-test', `Date: ${new Date().toUTCString()}`,
    'MD5Sum:', ` ${entry('md5')}`, 'SHA256:', ` ${entry('sha256')}`, '',
  ].join('\n'));
  gpg('--clearsign', '-o', join(dir, 'InRelease'), join(dir, 'Release'));
  gpg('-abs', '-o', join(dir, 'Release.gpg'), join(dir, 'Release'));
  const key = gpg('--armor', '--export').toString();
  writeFileSync(join(dir, 'extra.asc'), key);
  rmSync(home, { recursive: true, force: true });
  return { dir, key };
}

/** Serves `dir`'s files (no listing) on every address, on a port of the system's choosing. */
function serve(dir: string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    const file = join(dir, path);
    try {
      if (!file.startsWith(dir) || !statSync(file).isFile()) throw new Error('not a file');
      const body = readFileSync(file);
      res.writeHead(200, { 'content-length': body.length });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '0.0.0.0', () => resolve(server)));
}

const why = labUnavailable() ?? missingTools();
if (why) {
  test(`LAB TESTS SKIPPED: package_repository and holds on lab hosts: ${why}`, { skip: why }, () => {});
  process.stderr.write(`\n*** LAB TESTS SKIPPED: ${why} ***\n\n`);
} else {
  let lab: Lab;
  let host: LabHost;
  let repo: SignedRepo;
  let server: Server;
  /** The repository's URL as the lab host reaches this machine (its /30's first address). */
  let url: string;
  before(async () => {
    repo = buildSignedRepo();
    server = await serve(repo.dir);
    lab = await startLab(1, { repo: true });
    host = lab.hosts[0]!;
    const octets = host.address.split('.');
    octets[3] = String(Number(octets[3]) - 1);
    url = `http://${octets.join('.')}:${(server.address() as AddressInfo).port}/`;
  });
  after(async () => {
    await lab?.stop();
    await new Promise((done) => (server ? server.close(done) : done(undefined)));
    if (repo) rmSync(repo.dir, { recursive: true, force: true });
  });

  /** `cairn apply|plan --json` on a one-target site whose state `s` has `parts`; `files`: more site files. */
  const converge = async (parts: string, mode: 'apply' | 'plan' = 'apply', files: Record<string, string> = {}) => {
    const site = makeSite({ 'cairn.yaml': `${targetYaml(host)}    run: [s]\nstates:\n  s:\n${parts}`, ...files });
    const r = await runCli([mode, '--site', site, '--json']);
    let target: TargetReport;
    try {
      target = (JSON.parse(r.stdout) as Report).targets[0]!;
    } catch {
      assert.fail(`cairn ${mode}: no JSON report (exit ${r.status}); stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
    }
    const nodes = target.nodes.map((n) => `${n.status} ${n.ref}`);
    return { status: r.status, target, nodes, stderr: r.stderr };
  };
  const installed = async (name: string) => (await host.sh(`dpkg-query -W -f='\${Status}' ${name} 2>/dev/null`)).stdout === 'install ok installed';
  const exists = async (path: string) => (await host.sh(`test -e ${path}`)).code === 0;
  const held = async () => (await host.sh('apt-mark showhold')).stdout.split('\n').filter(Boolean);

  const withSiteKey = (name: string) =>
    `    - package_repository: ${name}\n      uri: ${url}\n      suites: ./\n      key: keys/extra.asc\n` +
    `    - package: cairn-extra\n      require: package_repository:${name}\n`;

  test('apt: a signed repository with its key from a site file, and a package only it has, in one run; then nothing to do; absent removes it', async () => {
    const files = { 'keys/extra.asc': repo.key };
    assert.equal(await installed('cairn-extra'), false);
    assert.equal((await host.sh('apt-cache policy cairn-extra')).stdout, '', 'the lab repository does not have it');

    const plan = await converge(withSiteKey('extra'), 'plan', files);
    assert.equal(plan.status, 0, plan.stderr);
    assert.deepEqual(plan.nodes, ['would-change package_repository:extra', 'would-change package:cairn-extra']);

    const first = await converge(withSiteKey('extra'), 'apply', files);
    assert.equal(first.status, 0, `${first.stderr}\n${JSON.stringify(first.target.nodes, null, 1)}`);
    assert.deepEqual(first.nodes, ['changed package_repository:extra', 'changed package:cairn-extra']);
    assert.ok(await installed('cairn-extra'));
    assert.equal((await host.sh('cat /usr/share/cairn-extra/version')).stdout, '1.0-1\n');
    const sources = (await host.sh('cat /etc/apt/sources.list.d/extra.sources')).stdout;
    assert.match(sources, new RegExp(`^Types: deb\nURIs: ${url}\nSuites: \\./\nSigned-By: /etc/apt/keyrings/extra\\.asc$`, 'm'));
    assert.equal((await host.sh('cat /etc/apt/keyrings/extra.asc')).stdout, repo.key);
    assert.equal((await host.sh('stat -c %a /etc/apt/keyrings/extra.asc')).stdout.trim(), '644');
    // apt checks the repository's signature with that key, and with no other: a clean update.
    const update = await host.sh('apt-get -q update 2>&1');
    assert.equal(update.code, 0, update.stdout);
    assert.doesNotMatch(update.stdout, /^[WE]: /m);

    const again = await converge(withSiteKey('extra'), 'apply', files);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(again.nodes, ['unchanged package_repository:extra', 'unchanged package:cairn-extra']);
    assert.equal(again.target.counts.changed, 0);

    const gone = await converge('    - package_repository: extra\n      ensure: absent\n');
    assert.equal(gone.status, 0, gone.stderr);
    assert.deepEqual(gone.nodes, ['changed package_repository:extra']);
    assert.equal(await exists('/etc/apt/sources.list.d/extra.sources'), false);
    assert.equal(await exists('/etc/apt/keyrings/extra.asc'), false);
    const after = await converge('    - package_repository: extra\n      ensure: absent\n');
    assert.deepEqual(after.nodes, ['unchanged package_repository:extra']);
    assert.equal((await host.sh('apt-get -q update')).code, 0);
  });

  test('apt: after a repository changed, the next install refreshes the lists first (latest reaches the version only the new repository has)', async () => {
    // cairn-dummy at 1.0-1 and not held; the lab repository's newest is 2.0-1, the new one's 3.0-1.
    assert.equal((await host.sh('apt-mark unhold cairn-dummy; apt-get install -y -q --allow-downgrades cairn-dummy=1.0-1')).code, 0);
    const files = { 'keys/extra.asc': repo.key };
    const parts = `    - package_repository: newer\n      uri: ${url}\n      suites: ./\n      key: keys/extra.asc\n` +
      '    - package: cairn-dummy\n      ensure: latest\n      require: package_repository:newer\n';
    const first = await converge(parts, 'apply', files);
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.nodes, ['changed package_repository:newer', 'changed package:cairn-dummy']);
    // Lists not refreshed would have installed 2.0-1, the newest apt knew of before the run.
    assert.equal((await host.sh("dpkg-query -W -f='${Version}' cairn-dummy")).stdout, '3.0-1');
    const again = await converge(parts, 'apply', files);
    assert.deepEqual(again.nodes, ['unchanged package_repository:newer', 'unchanged package:cairn-dummy']);
    assert.equal(again.target.counts.changed, 0);
    assert.equal((await converge('    - package_repository: newer\n      ensure: absent\n')).status, 0);
  });

  test('apt: a key downloaded by the host is put in place only when its sha256 is the pinned one', async () => {
    const sha = createHash('sha256').update(repo.key).digest('hex');
    const part = (name: string, sha256: string) =>
      `    - package_repository: ${name}\n      uri: ${url}\n      suites: ./\n      key: ${url}extra.asc\n      key_sha256: ${sha256}\n`;
    const temps = async () => (await host.sh('ls -A /tmp')).stdout;
    const tempsBefore = await temps();

    const wrong = await converge(part('extra-url', 'ab'.repeat(32)));
    assert.equal(wrong.status, 1, wrong.stderr);
    assert.deepEqual(wrong.nodes, ['failed package_repository:extra-url']);
    const error = wrong.target.nodes[0]!.error ?? '';
    assert.match(error, new RegExp(`the key downloaded from ${url}extra\\.asc has sha256 ${sha}, not the key_sha256 ${'ab'.repeat(32)}: nothing was put in place`));
    assert.equal(await exists('/etc/apt/keyrings/extra-url.asc'), false);
    assert.equal(await exists('/etc/apt/sources.list.d/extra-url.sources'), false);
    assert.equal(await temps(), tempsBefore, 'the download was removed');

    const right = await converge(part('extra-url', sha));
    assert.equal(right.status, 0, right.stderr);
    assert.deepEqual(right.nodes, ['changed package_repository:extra-url']);
    assert.equal((await host.sh('sha256sum /etc/apt/keyrings/extra-url.asc')).stdout.split(' ')[0], sha);
    assert.equal(await temps(), tempsBefore);
    assert.deepEqual((await converge(part('extra-url', sha))).nodes, ['unchanged package_repository:extra-url']);
    assert.equal((await converge('    - package_repository: extra-url\n      ensure: absent\n')).status, 0);
  });

  test('apt: a version pin holds the package (apt-mark hold); removing the pin releases it; each then has nothing to do', async () => {
    assert.ok(lab.packages.includes('cairn-dummy'), lab.packages.join(' '));
    const pinned = '    - package: cairn-dummy\n      version: "1.0-1"\n';
    const first = await converge(pinned);
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual(first.nodes, ['changed package:cairn-dummy']);
    assert.deepEqual(await held(), ['cairn-dummy']);
    assert.equal((await host.sh("dpkg-query -W -f='${Version}' cairn-dummy")).stdout, '1.0-1');
    // Held: an upgrade leaves it where it is, though the repository has 2.0-1.
    const upgrade = await host.sh('apt-get -s -q upgrade');
    assert.equal(upgrade.code, 0, upgrade.stderr);
    assert.doesNotMatch(upgrade.stdout, /^Inst cairn-dummy/m);
    assert.match((await host.sh('apt-get -s -q install --only-upgrade cairn-dummy=2.0-1 2>&1')).stdout, /Held packages were changed|held/i);
    const again = await converge(pinned);
    assert.deepEqual(again.nodes, ['unchanged package:cairn-dummy']);
    assert.equal(again.target.counts.changed, 0);

    const unpinned = '    - package: cairn-dummy\n';
    const plan = await converge(unpinned, 'plan');
    assert.deepEqual(plan.nodes, ['would-change package:cairn-dummy']);
    assert.deepEqual(plan.target.nodes[0]!.changes, ['hold']);
    const released = await converge(unpinned);
    assert.equal(released.status, 0, released.stderr);
    assert.deepEqual(released.nodes, ['changed package:cairn-dummy']);
    assert.deepEqual(await held(), []);
    assert.equal((await host.sh("dpkg-query -W -f='${Version}' cairn-dummy")).stdout, '1.0-1', 'released, not upgraded');
    const still = await converge(unpinned);
    assert.deepEqual(still.nodes, ['unchanged package:cairn-dummy']);
    assert.equal(still.target.counts.changed, 0);
  });
}
