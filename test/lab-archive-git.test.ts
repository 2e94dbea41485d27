/**
 * The archive and git types for real: a Debian bookworm lab host (curl, tar, xz, bzip2, unzip,
 * git), converged by the `cairn` command over SSH. Downloads come from an HTTP server this test
 * runs (node:http on every address; the host reaches this machine at its /30's first address),
 * so the host downloads over its own network; git clones from a repository made on the host.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { NodeResult } from '../src/engine/engine.ts';
import type { Report } from './helpers/converge.ts';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';
import { labUnavailable, startLab, type Lab, type LabHost, targetYaml } from './helpers/lab.ts';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** An archive of `files` (path → content) under a top folder `top`, made by this machine's tar or zip. */
function archive(format: 'tar.gz' | 'tar.xz' | 'tar.bz2' | 'zip', top: string, files: Record<string, string>): Buffer {
  const dir = tempDir('cairn-archive-src-');
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(dir, top, path, '..'), { recursive: true });
    writeFileSync(join(dir, top, path), content);
  }
  const out = join(dir, `out.${format}`);
  if (format === 'zip') execFileSync('zip', ['-qr', out, top], { cwd: dir });
  else execFileSync('tar', [{ 'tar.gz': '-czf', 'tar.xz': '-cJf', 'tar.bz2': '-cjf' }[format], out, top], { cwd: dir });
  return readFileSync(out);
}

const zipMissing = (() => {
  try {
    execFileSync('zip', ['-v'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'this machine has no zip command to make the test archive';
  }
})();

/** What the server was asked: path and Range header of each request. */
interface Request {
  path: string;
  range?: string;
}

/**
 * Serves `files` by path. A path in `cut` answers its next requests without a range (as many as
 * it says) with the full length announced but only half the bytes, then drops the connection;
 * every request honours `Range: bytes=N-` with a 206.
 */
class FileServer {
  readonly files = new Map<string, Buffer>();
  /** Paths whose next N full (not ranged) answers are cut off halfway. */
  readonly cut = new Map<string, number>();
  /** Paths answered 503 (the server is down for them); `downAfterCut`: from their next cut on. */
  readonly down = new Set<string>();
  readonly downAfterCut = new Set<string>();
  readonly requests: Request[] = [];
  /** Paths under a prefix served from a folder of this machine (a git repository for the dumb protocol). */
  readonly folders = new Map<string, string>();
  private server!: Server;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.answer(req, res));
    await new Promise<void>((done) => this.server.listen(0, '0.0.0.0', done));
    this.port = (this.server.address() as AddressInfo).port;
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? '/';
    this.requests.push({ path, ...(req.headers.range !== undefined ? { range: req.headers.range } : {}) });
    if (this.down.has(path)) {
      res.writeHead(503).end('down\n');
      return;
    }
    const folder = [...this.folders].find(([prefix]) => path.startsWith(prefix));
    const body = folder ? fileIn(folder[1], path.slice(folder[0].length)) : this.files.get(path);
    if (!body) {
      res.writeHead(404).end('not found\n');
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      const from = Number(range[1]);
      if (from >= body.length) {
        res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, { 'content-length': body.length - from, 'content-range': `bytes ${from}-${body.length - 1}/${body.length}`, 'accept-ranges': 'bytes' });
      res.end(body.subarray(from));
      return;
    }
    res.writeHead(200, { 'content-length': body.length, 'accept-ranges': 'bytes' });
    const cuts = this.cut.get(path) ?? 0;
    if (cuts > 0) {
      this.cut.set(path, cuts - 1);
      if (this.downAfterCut.delete(path)) this.down.add(path);
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.destroy());
      return;
    }
    res.end(body);
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((done) => this.server.close(() => done()));
  }
}

/** A file under `folder` (a path that stays inside it), or undefined. */
function fileIn(folder: string, relativePath: string): Buffer | undefined {
  const path = join(folder, decodeURIComponent(relativePath.replace(/[?#].*$/, '')));
  if (!path.startsWith(`${folder}/`) || !existsSync(path) || !statSync(path).isFile()) return undefined;
  return readFileSync(path);
}

const why = labUnavailable();
if (why) {
  test(`LAB TESTS SKIPPED: archive and git on a lab host: ${why}`, { skip: why }, () => {});
  process.stderr.write(`\n*** LAB TESTS SKIPPED: ${why} ***\n\n`);
} else {
  let lab: Lab;
  let host: LabHost;
  const server = new FileServer();
  /** The URL of `path` as the lab host reaches this machine. */
  let url: (path: string) => string;

  const sh = (command: string) => host.must(command);

  before(async () => {
    await server.start();
    lab = await startLab(1);
    host = lab.hosts[0]!;
    const octets = host.address.split('.');
    const here = [...octets.slice(0, 3), String(Number(octets[3]) - 1)].join('.');
    url = (path) => `http://${here}:${server.port}${path}`;
    // The user type is not under test here: the owner is made by hand.
    await sh('useradd --create-home app');
    await sh('mkdir -p /opt /srv');
    // The origins on the host are shared: root pushes to them and app clones them, and git refuses a
    // repository another user owns unless told it is safe (Cairn itself never relies on this).
    await sh("git config --system safe.directory '*'");
  });
  after(async () => {
    await lab?.stop();
    await server.stop();
  });

  /** `cairn <mode> --json` of a site whose one target is the lab host, running `parts`; `files` are binary site files. */
  const converge = async (parts: string[], options: { status?: number; mode?: 'apply' | 'plan'; files?: Record<string, Buffer> } = {}) => {
    const site = makeSite({
      'cairn.yaml': `${targetYaml(host)}    run: [s]\n`,
      'states/s.yaml': `s:\n${parts.map((p) => `${p}\n`).join('')}`,
    });
    for (const [path, data] of Object.entries(options.files ?? {})) {
      mkdirSync(join(site, path, '..'), { recursive: true });
      writeFileSync(join(site, path), data);
    }
    const r = await runCli([options.mode ?? 'apply', '--site', site, '--json']);
    assert.equal(r.status, options.status ?? 0, `cairn exit code; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
    return (JSON.parse(r.stdout) as Report).targets[0]!.nodes;
  };
  const apply = (parts: string[], status = 0, files?: Record<string, Buffer>) => converge(parts, { status, ...(files ? { files } : {}) });
  const statuses = (nodes: NodeResult[]) => nodes.map((n) => `${n.status} ${n.ref}`);
  /** `cairn plan --diff` in text: what a user reads. */
  const planText = async (parts: string[]) => {
    const site = makeSite({
      'cairn.yaml': `${targetYaml(host)}    run: [s]\n`,
      'states/s.yaml': `s:\n${parts.map((p) => `${p}\n`).join('')}`,
    });
    const r = await runCli(['plan', '--diff', '--site', site]);
    assert.equal(r.status, 0, r.stderr);
    return r.stdout;
  };

  // ── archive ─────────────────────────────────────────────────────────────────────────────────

  test('archive: a download with its sha256, stripped, owned and moded; plan says what it would fetch; a second run changes nothing; a new archive re-unpacks', async () => {
    const v1 = archive('tar.gz', 'app-1.0', { 'bin/app': '#!/bin/sh\necho 1\n', 'share/doc/README': 'one\n', 'old.txt': 'only in 1.0\n' });
    server.files.set('/app-1.0.tar.gz', v1);
    const parts = (name: string, data: Buffer) => [
      '  - archive: /opt/t1/app',
      `    source: ${url(`/${name}`)}`,
      `    sha256: ${sha256(data)}`,
      '    strip_components: 1',
      '    owner: app',
      '    group: app',
      '    mode: "0750"',
    ];
    await sh('mkdir /opt/t1');
    const plan = await planText(parts('app-1.0.tar.gz', v1));
    assert.match(plan, new RegExp(`download ${url('/app-1.0.tar.gz').replace(/[.]/g, '\\.')} \\(sha256 ${sha256(v1)}\\)`));
    assert.match(plan, /unpack it \(tar\.gz\) into \/opt\/t1\/app, dropping 1 leading folder/);
    assert.equal((await host.sh('test -e /opt/t1/app')).code, 1, 'a plan changes nothing');

    assert.deepEqual(statuses(await apply(parts('app-1.0.tar.gz', v1))), ['changed archive:/opt/t1/app']);
    assert.equal(await sh('cat /opt/t1/app/share/doc/README /opt/t1/app/old.txt'), 'one\nonly in 1.0\n');
    assert.equal(await sh('stat -c "%U:%G %a" /opt/t1/app /opt/t1/app/bin/app /opt/t1/app/share/doc/README'), 'app:app 750\napp:app 644\napp:app 644\n');
    assert.equal(await sh('ls -A /opt/t1'), 'app\n', 'no download or temp folder left beside it');

    assert.deepEqual(statuses(await apply(parts('app-1.0.tar.gz', v1))), ['unchanged archive:/opt/t1/app']);

    // Someone changed the owner of the folder: put back without unpacking again (the server is not asked).
    await sh('chown -R root:root /opt/t1/app');
    const asked = server.requests.length;
    assert.deepEqual(statuses(await apply(parts('app-1.0.tar.gz', v1))), ['changed archive:/opt/t1/app']);
    assert.equal(server.requests.length, asked);
    assert.equal(await sh('stat -c "%U:%G" /opt/t1/app/bin/app'), 'app:app\n');

    const v2 = archive('tar.gz', 'app-2.0', { 'bin/app': '#!/bin/sh\necho 2\n', 'share/doc/README': 'two\n' });
    server.files.set('/app-2.0.tar.gz', v2);
    assert.deepEqual(statuses(await apply(parts('app-2.0.tar.gz', v2))), ['changed archive:/opt/t1/app']);
    assert.equal(await sh('cat /opt/t1/app/share/doc/README'), 'two\n');
    assert.equal((await host.sh('test -e /opt/t1/app/old.txt')).code, 1, 'the folder holds the new archive only');
    assert.equal(await sh('ls -A /opt/t1'), 'app\n');
    assert.deepEqual(statuses(await apply(parts('app-2.0.tar.gz', v2))), ['unchanged archive:/opt/t1/app']);

    assert.deepEqual(statuses(await apply(['  - archive: /opt/t1/app', '    ensure: absent'])), ['changed archive:/opt/t1/app']);
    assert.equal(await sh('ls -A /opt/t1'), '');
    assert.deepEqual(statuses(await apply(['  - archive: /opt/t1/app', '    ensure: absent'])), ['unchanged archive:/opt/t1/app']);
  });

  test('archive: a download cut off midway is resumed with a Range request in the same run', async () => {
    const big = archive('tar.gz', 'data', { 'blob.bin': createHash('sha512').update('seed').digest('hex').repeat(20000) });
    server.files.set('/cut.tar.gz', big);
    server.cut.set('/cut.tar.gz', 1);
    await sh('mkdir /opt/t2');
    const before = server.requests.length;
    const parts = ['  - archive: /opt/t2/cut', `    source: ${url('/cut.tar.gz')}`, `    sha256: ${sha256(big)}`];
    assert.deepEqual(statuses(await apply(parts)), ['changed archive:/opt/t2/cut']);
    const asked = server.requests.slice(before);
    assert.equal(asked.length, 2, JSON.stringify(asked));
    assert.equal(asked[0]!.range, undefined);
    assert.match(asked[1]!.range ?? '', /^bytes=[1-9]\d*-$/, 'the second request asks for the rest only');
    assert.equal(Number(/\d+/.exec(asked[1]!.range!)![0]), Math.floor(big.length / 2));
    assert.equal(await sh('sha256sum < /opt/t2/cut/data/blob.bin'), `${sha256(Buffer.from(createHash('sha512').update('seed').digest('hex').repeat(20000)))}  -\n`);
    assert.equal(await sh('ls -A /opt/t2'), 'cut\n');
      });

  test('archive: a run whose download failed leaves what it got, and the next run resumes it', async () => {
    await sh('mkdir /opt/t5');
    const big = archive('tar.gz', 'data', { 'blob.bin': createHash('sha512').update('another seed').digest('hex').repeat(20000) });
    server.files.set('/flaky.tar.gz', big);
    // The first answer is cut off halfway, and the server is down for it after that: the run gives up.
    server.cut.set('/flaky.tar.gz', 1);
    server.downAfterCut.add('/flaky.tar.gz');
    const parts = ['  - archive: /opt/t5/data', `    source: ${url('/flaky.tar.gz')}`, `    sha256: ${sha256(big)}`];
    const failed = await apply(parts, 1);
    assert.equal(failed[0]!.status, 'failed');
    assert.match(failed[0]!.error ?? '', /exited with 22:[\s\S]*503/);
    const partial = (await sh('ls -A /opt/t5')).trim();
    assert.match(partial, /^\.data\.cairn-download\.[0-9a-f]{16}$/, 'the half it got is kept');
    assert.equal(Number(await sh(`stat -c %s /opt/t5/${partial}`)), Math.floor(big.length / 2));

    // The next run asks only for the rest.
    server.down.delete('/flaky.tar.gz');
    const asked = server.requests.length;
    assert.deepEqual(statuses(await apply(parts)), ['changed archive:/opt/t5/data']);
    assert.deepEqual(server.requests.slice(asked).map((r) => r.range), [`bytes=${Math.floor(big.length / 2)}-`]);
    assert.equal(await sh('ls -A /opt/t5'), 'data\n');
    assert.equal(await sh('sha256sum < /opt/t5/data/data/blob.bin'), `${sha256(Buffer.from(createHash('sha512').update('another seed').digest('hex').repeat(20000)))}  -\n`);
  });

  test('archive: a download whose sha256 differs fails the node and leaves nothing in place', async () => {
    await sh('mkdir /opt/t3');
    const real = archive('tar.gz', 'x', { 'a.txt': 'a\n' });
    server.files.set('/tampered.tar.gz', real);
    const wrong = sha256(Buffer.from('something else'));
    const nodes = await apply(['  - archive: /opt/t3/tampered', `    source: ${url('/tampered.tar.gz')}`, `    sha256: ${wrong}`], 1);
    assert.equal(nodes[0]!.status, 'failed');
    assert.match(nodes[0]!.error ?? '', new RegExp(`has sha256 ${sha256(real)}, not the ${wrong} expected; nothing was unpacked`));
    assert.equal(await sh('ls -A /opt/t3'), '', 'neither the download nor an unpacked tree is left');

    // A download that is not there: the tool's words, nothing left.
    const missing = await apply(['  - archive: /opt/t3/missing', `    source: ${url('/no-such.tar.gz')}`, `    sha256: ${wrong}`], 1);
    assert.equal(missing[0]!.status, 'failed');
    assert.match(missing[0]!.error ?? '', /downloading http:\S+\/no-such\.tar\.gz \(curl\) exited with 22:[\s\S]*404/);
    assert.equal(await sh('ls -A /opt/t3'), '');

    // Over an existing folder: the old archive stays as it was.
    const good = archive('tar.gz', 'x', { 'a.txt': 'good\n' });
    server.files.set('/good.tar.gz', good);
    await apply(['  - archive: /opt/t3/tampered', `    source: ${url('/good.tar.gz')}`, `    sha256: ${sha256(good)}`]);
    await apply(['  - archive: /opt/t3/tampered', `    source: ${url('/tampered.tar.gz')}`, `    sha256: ${wrong}`], 1);
    assert.equal(await sh('cat /opt/t3/tampered/x/a.txt'), 'good\n');
    assert.equal(await sh('ls -A /opt/t3'), 'tampered\n');
  });

  test('archive: a zip from the site and a tar.xz and tar.bz2 download; creates skips; a second run changes nothing', { skip: zipMissing }, async () => {
    await sh('mkdir /opt/t4');
    const zip = archive('zip', 'site-app', { 'index.html': '<h1>zip</h1>\n', 'css/site.css': 'body {}\n' });
    const xz = archive('tar.xz', 'tools', { 'tool.sh': 'xz\n' });
    const bz2 = archive('tar.bz2', 'more', { 'm.txt': 'bz2\n' });
    server.files.set('/tools.tar.xz', xz);
    server.files.set('/more.tbz', bz2);
    const parts = [
      '  - archive: /opt/t4/site',
      '    source: files/site-app.zip',
      '    strip_components: 1',
      '    owner: app',
      '  - archive: /opt/t4/tools',
      `    source: ${url('/tools.tar.xz')}`,
      `    sha256: ${sha256(xz)}`,
      '  - archive: /opt/t4/more',
      `    source: ${url('/more.tbz')}`,
      '    format: tar.bz2',
      `    sha256: ${sha256(bz2)}`,
      '  - archive: /opt/t4/skipped',
      `    source: ${url('/more.tbz')}`,
      '    format: tar.bz2',
      `    sha256: ${sha256(bz2)}`,
      '    creates: /etc/hostname',
    ];
    const files = { 'files/site-app.zip': zip };
    assert.deepEqual(statuses(await apply(parts, 0, files)), [
      'changed archive:/opt/t4/site', 'changed archive:/opt/t4/tools', 'changed archive:/opt/t4/more', 'unchanged archive:/opt/t4/skipped',
    ]);
    assert.equal(await sh('cat /opt/t4/site/index.html /opt/t4/site/css/site.css'), '<h1>zip</h1>\nbody {}\n');
    assert.equal(await sh('stat -c %U /opt/t4/site/css/site.css'), 'app\n');
    assert.equal(await sh('cat /opt/t4/tools/tools/tool.sh /opt/t4/more/more/m.txt'), 'xz\nbz2\n');
    assert.equal((await host.sh('test -e /opt/t4/skipped')).code, 1);
    assert.deepEqual(statuses(await apply(parts, 0, files)), [
      'unchanged archive:/opt/t4/site', 'unchanged archive:/opt/t4/tools', 'unchanged archive:/opt/t4/more', 'unchanged archive:/opt/t4/skipped',
    ]);
  });

  // ── git ─────────────────────────────────────────────────────────────────────────────────────

  /** A bare repository /srv/<name>.git on the host with a branch main, and a clone of it to commit in. */
  const makeOrigin = async (name: string) => {
    await sh(`git init -q --bare /srv/${name}.git && git -C /srv/${name}.git symbolic-ref HEAD refs/heads/main && ` +
      `git init -q /root/${name}-work && cd /root/${name}-work && git symbolic-ref HEAD refs/heads/main && git remote add origin /srv/${name}.git`);
  };
  /** Commits `content` to `file` in the origin `name` (tagging it `tag`) and returns the commit. */
  const commit = async (name: string, file: string, content: string, tag?: string) => {
    const work = `/root/${name}-work`;
    await sh(`cd ${work} && printf '%s' '${content}' > ${file} && git add -A && git -c user.name=t -c user.email=t@example.com commit -qm '${file}: ${content.trim()}'` +
      `${tag ? ` && git -c user.name=t -c user.email=t@example.com tag -a -m ${tag} ${tag}` : ''} && git push -q --follow-tags origin main`);
    return (await sh(`git -C ${work} rev-parse HEAD`)).trim();
  };
  const head = async (path: string) => (await sh(`git -C ${path} rev-parse HEAD`)).trim();

  test('git: clones at the default branch, a tag, a commit and shallow; run as the owner; a second run changes nothing', async () => {
    await makeOrigin('one');
    const first = await commit('one', 'a.txt', 'one\n', 'v1');
    const second = await commit('one', 'a.txt', 'two\n');
    const third = await commit('one', 'b.txt', 'three\n');
    const parts = [
      '  - git: /srv/one/app',
      '    repository: /srv/one.git',
      '    owner: app',
      '  - git: /srv/one/tagged',
      '    repository: /srv/one.git',
      '    revision: v1',
      '  - git: /srv/one/pinned',
      '    repository: /srv/one.git',
      `    revision: "${second.slice(0, 10)}"`,
      '  - git: /srv/one/shallow',
      '    repository: file:///srv/one.git',
      '    revision: main',
      '    depth: 1',
      '  - git: /srv/one/pinned-shallow',
      '    repository: file:///srv/one.git',
      `    revision: "${second}"`,
      '    depth: 1',
    ];
    assert.deepEqual(statuses(await apply(parts)), [
      'changed git:/srv/one/app', 'changed git:/srv/one/tagged', 'changed git:/srv/one/pinned', 'changed git:/srv/one/shallow', 'changed git:/srv/one/pinned-shallow',
    ]);
    assert.equal(await head('/srv/one/app'), third);
    assert.equal(await sh('git -C /srv/one/app rev-parse --abbrev-ref HEAD @{upstream}'), 'main\norigin/main\n', 'on a branch that tracks origin');
    assert.equal(await sh('stat -c %U /srv/one/app /srv/one/app/b.txt /srv/one/app/.git/HEAD'), 'app\napp\napp\n');
    assert.equal(await head('/srv/one/tagged'), first);
    assert.equal(await sh('cat /srv/one/tagged/a.txt'), 'one\n');
    assert.equal(await head('/srv/one/pinned'), second);
    assert.equal(await head('/srv/one/shallow'), third);
    assert.equal(await sh('git -C /srv/one/shallow rev-list --count HEAD'), '1\n', 'depth 1: one commit of history');
    // A commit no branch tip names, fetched by its id with depth 1.
    assert.equal(await head('/srv/one/pinned-shallow'), second);
    assert.equal(await sh('git -C /srv/one/pinned-shallow rev-list --count HEAD'), '1\n');

    assert.deepEqual(statuses(await apply(parts)), [
      'unchanged git:/srv/one/app', 'unchanged git:/srv/one/tagged', 'unchanged git:/srv/one/pinned', 'unchanged git:/srv/one/shallow', 'unchanged git:/srv/one/pinned-shallow',
    ]);
  });

  test('git: a new commit upstream moves HEAD (plan shows old → new); local edits fail with what is dirty and touch nothing; force: true resets', async () => {
    const parts = (force = false) => ['  - git: /srv/two/app', '    repository: /srv/two.git', '    owner: app', ...(force ? ['    force: true'] : [])];
    await makeOrigin('two');
    await commit('two', 'a.txt', 'two\n');
    assert.deepEqual(statuses(await apply(parts())), ['changed git:/srv/two/app']);
    const before = await head('/srv/two/app');
    const next = await commit('two', 'c.txt', 'four\n');
    const plan = await planText(parts());
    assert.match(plan, new RegExp(`HEAD ${before.slice(0, 12)} → ${next.slice(0, 12)} \\(HEAD\\)`));
    assert.equal(await head('/srv/two/app'), before, 'a plan moves nothing');
    assert.deepEqual(statuses(await apply(parts())), ['changed git:/srv/two/app']);
    assert.equal(await head('/srv/two/app'), next);
    assert.equal(await sh('cat /srv/two/app/c.txt'), 'four\n');

    // Edited by hand, and a commit upstream: the checkout must move, and refuses.
    await sh("runuser -u app -- sh -c 'echo edited > /srv/two/app/a.txt && echo new > /srv/two/app/untracked.txt'");
    const upstream = await commit('two', 'd.txt', 'five\n');
    const failed = await apply(parts(), 1);
    assert.equal(failed[0]!.status, 'failed');
    assert.match(failed[0]!.error ?? '', /\/srv\/two\/app has local changes; not touching it \(force: true discards them\)/);
    assert.match(failed[0]!.error ?? '', / M a\.txt/);
    assert.match(failed[0]!.error ?? '', /\?\? untracked\.txt/);
    assert.equal(await head('/srv/two/app'), next, 'HEAD did not move');
    assert.equal(await sh('cat /srv/two/app/a.txt /srv/two/app/untracked.txt'), 'edited\nnew\n', 'the edits are untouched');
    assert.equal(await sh('git -C /srv/two/app rev-parse origin/main'), `${next}\n`, 'not even fetched');

    // A local commit is refused too.
    await sh("runuser -u app -- sh -c 'cd /srv/two/app && git add -A && git -c user.name=t -c user.email=t@example.com commit -qm local'");
    const local = await apply(parts(), 1);
    assert.match(local[0]!.error ?? '', /1 local commit\(s\) not on the remote/);

    assert.deepEqual(statuses(await apply(parts(true))), ['changed git:/srv/two/app']);
    assert.equal(await head('/srv/two/app'), upstream);
    assert.equal(await sh('cat /srv/two/app/a.txt'), 'two\n');
    assert.equal((await host.sh('test -e /srv/two/app/untracked.txt')).code, 1);
    assert.equal(await sh('git -C /srv/two/app status --porcelain'), '');
    assert.deepEqual(statuses(await apply(parts(true))), ['unchanged git:/srv/two/app']);

    assert.deepEqual(statuses(await apply(['  - git: /srv/two/app', '    ensure: absent'])), ['changed git:/srv/two/app']);
    assert.equal((await host.sh('test -e /srv/two/app')).code, 1);
    assert.deepEqual(statuses(await apply(['  - git: /srv/two/app', '    ensure: absent'])), ['unchanged git:/srv/two/app']);
  });

  test('git: a repository over HTTP (git\'s dumb protocol, served from this machine); notified, it fetches again and HEAD stays', async () => {
    const dir = tempDir('cairn-git-http-');
    const git = (...args: string[]) => execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd: dir, encoding: 'utf8' }).trim();
    git('init', '-q', '--bare', 'repo.git');
    git('-C', 'repo.git', 'symbolic-ref', 'HEAD', 'refs/heads/main');
    git('init', '-q', 'work');
    git('-C', 'work', 'symbolic-ref', 'HEAD', 'refs/heads/main');
    const push = (file: string, content: string) => {
      writeFileSync(join(dir, 'work', file), content);
      git('-C', 'work', 'add', '-A');
      git('-C', 'work', 'commit', '-qm', file);
      git('-C', 'work', 'push', '-q', join(dir, 'repo.git'), 'main');
      // What the dumb protocol reads: info/refs and objects/info/packs.
      git('-C', 'repo.git', 'update-server-info');
      return git('-C', 'work', 'rev-parse', 'HEAD');
    };
    const first = push('a.txt', 'one\n');
    server.folders.set('/repo.git/', join(dir, 'repo.git'));
    await sh('mkdir /srv/http');
    // A repository that is not there: git's words, and nothing created.
    const nowhere = await apply(['  - git: /srv/http/nowhere', `    repository: ${url('/nowhere.git')}`], 1);
    assert.equal(nowhere[0]!.status, 'failed');
    assert.match(nowhere[0]!.error ?? '', /git ls-remote --symref http:\S+\/nowhere\.git HEAD exited with 128/);
    assert.equal((await host.sh('test -e /srv/http/nowhere')).code, 1);

    const parts = ['  - git: /srv/http/app', `    repository: ${url('/repo.git')}`];
    assert.deepEqual(statuses(await apply(parts)), ['changed git:/srv/http/app']);
    assert.equal(await head('/srv/http/app'), first);
    assert.equal(await sh('cat /srv/http/app/a.txt'), 'one\n');
    assert.deepEqual(statuses(await apply(parts)), ['unchanged git:/srv/http/app']);

    const second = push('b.txt', 'two\n');
    assert.deepEqual(statuses(await apply(parts)), ['changed git:/srv/http/app']);
    assert.equal(await head('/srv/http/app'), second);

    // A file that changes notifies the checkout: it fetches again (the server is asked), HEAD stays.
    const notified = [...parts, '  - file: /srv/http/trigger', '    content: "1"', '    notify: git:/srv/http/app'];
    const asked = server.requests.length;
    const nodes = await apply(notified);
    // The notifier runs first (a notify orders it before its handler), then the checkout, notified.
    assert.deepEqual(statuses(nodes), ['changed file:/srv/http/trigger', 'unchanged git:/srv/http/app']);
    assert.match(nodes[1]!.reason ?? '', /fetched; HEAD already at/);
    assert.ok(server.requests.slice(asked).some((r) => r.path.startsWith('/repo.git/info/refs')), 'the remote was asked again');
    assert.equal(await head('/srv/http/app'), second);
  });
}
