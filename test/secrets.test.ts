/** `!secret` values (DESIGN §4a, §5.13): real age round trips through the CLI; plaintext reaches the target only. */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildCatalog } from '../src/catalog/catalog.ts';
import { compile } from '../src/catalog/compile.ts';
import { unlockSecrets } from '../src/catalog/secrets.ts';
import { Diagnostics, InputError } from '../src/lib/errors.ts';
import { loadSite } from '../src/site/load.ts';
import { runCli, tempDir } from './helpers/cli.ts';
import { etcdUnavailable, startEtcdCluster, type EtcdCluster } from './helpers/etcd.ts';
import { scratchSite } from './helpers/converge.ts';

// The compile cache is on only for a build; these runs get one so that it is exercised.
(globalThis as { __CAIRN_BUILD__?: string }).__CAIRN_BUILD__ = `source-${process.pid}`;

const PLAIN = 'hunter2-very-secret';

async function keygen(name: string): Promise<{ file: string; recipient: string }> {
  const file = join(tempDir('cairn-key-'), `${name}.key`);
  const r = await runCli(['secret', 'keygen', '--out', file]);
  assert.equal(r.status, 0, r.stderr);
  const recipient = /public key: (age1\S+)/.exec(r.stdout)![1]!;
  return { file, recipient };
}

/** A site whose target t1 writes `conf` with the secret in it; the secret encrypted to t1 (and an admin). */
async function secretSite() {
  const t1 = await keygen('t1');
  const admin = await keygen('admin');
  const s = scratchSite('s', {
    'states/s.yaml': 's:\n  - file: <%= it.vars.root %>/conf\n    content: "password=<%= it.vars.db_password %>\\n"\n',
    'secrets.yaml': `admins: [${admin.recipient}]\nrecipients:\n  t1: [${t1.recipient}]\n`,
  });
  const enc = await runCli(['secret', 'encrypt', '--site', s.site, '--for', 't1', PLAIN]);
  assert.equal(enc.status, 0, enc.stderr);
  assert.match(enc.stdout, /^!secret \|\n {2}-----BEGIN AGE ENCRYPTED FILE-----/);
  assert.ok(!enc.stdout.includes(PLAIN));
  writeFileInto(join(s.site, 'vars/all.yaml'), `# the database\ndb_password: ${enc.stdout}`);
  return { s, t1, admin };
}

function writeFileInto(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

test('an applied secret reaches the file only: not stdout, the report, --diff, the compile cache or the store', async () => {
  const { s, t1 } = await secretSite();
  const db = join(tempDir('cairn-store-'), 'store.db');
  const env = { CAIRN_SECRET_KEY_FILE: t1.file };
  const r = await runCli(['apply', '--site', s.site, '--json', '--diff', '--store', `sqlite:${db}`], { env });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(join(s.root, 'conf'), 'utf8'), `password=${PLAIN}\n`);
  assert.ok(!r.stdout.includes(PLAIN) && !r.stderr.includes(PLAIN));
  const node = (JSON.parse(r.stdout) as { targets: { nodes: { status: string; diff?: string }[] }[] }).targets[0]!.nodes[0]!;
  assert.equal(node.status, 'changed');
  assert.match(node.diff ?? '', /^\(content hidden, \d+ bytes changed\)$/);

  const text = await runCli(['plan', '--site', s.site, '--diff'], { env });
  assert.equal(text.status, 0, text.stderr);
  assert.ok(!text.stdout.includes(PLAIN));
  const show = await runCli(['show', '--site', s.site, '--json'], { env });
  assert.equal(show.status, 0, show.stderr);
  assert.ok(!show.stdout.includes(PLAIN), 'show prints the compiled run without the plaintext');

  // A change shows how much changed, not what.
  const enc = await runCli(['secret', 'encrypt', '--site', s.site, '--for', 't1', `${PLAIN}-2`]);
  writeFileInto(join(s.site, 'vars/all.yaml'), `db_password: ${enc.stdout}`);
  const changed = await runCli(['apply', '--site', s.site, '--diff', '--store', `sqlite:${db}`], { env });
  assert.equal(changed.status, 0, changed.stderr);
  assert.match(changed.stdout, /\(content hidden, 2 bytes changed\)/);
  assert.ok(!changed.stdout.includes(PLAIN));

  const cache = join(s.site, '.cairn/cache');
  for (const f of existsSync(cache) ? readdirSync(cache) : []) {
    assert.ok(!readFileSync(join(cache, f)).includes(PLAIN), `cache file ${f}`);
    assert.ok(!f.startsWith('compiled-'), 'a compile that used a secret is not cached');
  }
  assert.ok(existsSync(db));
  for (const f of readdirSync(join(db, '..'))) assert.ok(!readFileSync(join(db, '..', f)).includes(PLAIN), `store file ${f}`);
});

test('without the key, or with a wrong one: exit 2 at the value, nothing changed', async () => {
  const { s } = await secretSite();
  const stranger = await keygen('stranger');
  for (const env of [{ CAIRN_SECRET_KEY_FILE: undefined }, { CAIRN_SECRET_KEY_FILE: stranger.file }, { CAIRN_SECRET_KEY_FILE: join(s.site, 'nope.key') }]) {
    const r = await runCli(['apply', '--site', s.site], { env });
    assert.equal(r.status, 2, r.stderr);
    // The armored text starts on line 3 of vars/all.yaml, indented two spaces.
    assert.match(r.stderr, /vars\/all\.yaml:3:3/);
    assert.match(r.stderr, /cannot decrypt this secret/);
    assert.ok(!existsSync(join(s.root, 'conf')), 'nothing ran');
  }
});

test('keygen, encrypt, decrypt: a round trip; the admins can decrypt too; the key file is 0600', async () => {
  const { s, t1, admin } = await secretSite();
  assert.equal(statSync(t1.file).mode & 0o777, 0o600);
  assert.match(readFileSync(t1.file, 'utf8'), /^AGE-SECRET-KEY-1/m);
  for (const key of [t1, admin]) {
    const byKeyLine = await runCli(['secret', 'decrypt', `${join(s.site, 'vars/all.yaml')}:2`], { env: { CAIRN_SECRET_KEY_FILE: key.file } });
    assert.equal(byKeyLine.status, 0, byKeyLine.stderr);
    assert.equal(byKeyLine.stdout, `${PLAIN}\n`);
  }
  const again = await runCli(['secret', 'keygen', '--out', t1.file]);
  assert.equal(again.status, 2, 'an existing key is never overwritten');
  const unknown = await runCli(['secret', 'encrypt', '--site', s.site, '--for', 'nobody', 'x']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /no recipients for 'nobody'/);
  const printed = await runCli(['secret', 'keygen']);
  assert.match(printed.stdout, /^# public key: age1\S+\nAGE-SECRET-KEY-1\S+\n$/m);
});

test("an agent's compile cannot open a secret encrypted to another target: a positioned error", async () => {
  const { s } = await secretSite();
  const other = await keygen('other-target');
  const d = new Diagnostics();
  const catalog = buildCatalog(await loadSite(s.site, d), d);
  d.throwIfAny();
  await unlockSecrets(catalog, { CAIRN_SECRET_KEY_FILE: other.file });
  assert.throws(() => compile(catalog, catalog.targets.get('t1')!), (err: unknown) => {
    assert.ok(err instanceof InputError);
    const diag = err.diagnostics[0]!;
    assert.equal(`${diag.pos?.file}:${diag.pos?.line}:${diag.pos?.col}`, 'vars/all.yaml:3:3');
    assert.match(diag.message, /no identity matched/);
    return true;
  });
});

test('-vv and --log never show a secret: commands and output that carry it print (sensitive)', async () => {
  const { s, t1 } = await secretSite();
  writeFileInto(join(s.site, 'states/s.yaml'), 's:\n  - exec: echo <%= it.vars.db_password %> > <%= it.vars.root %>/echoed\n');
  const log = join(tempDir('cairn-log-'), 'run.log');
  const r = await runCli(['apply', '--site', s.site, '-vv', '--log', log], { env: { CAIRN_SECRET_KEY_FILE: t1.file } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(readFileSync(join(s.root, 'echoed'), 'utf8'), `${PLAIN}\n`, 'the command itself got the plaintext');
  assert.match(r.stdout, /\(sensitive\)/, 'the command is shown, masked');
  for (const text of [r.stdout, r.stderr, readFileSync(log, 'utf8')]) assert.ok(!text.includes(PLAIN), text);
  assert.match(r.stdout, /changed +exec:\(sensitive\) \(run\)/, "the exec's ref is its command: masked too");
  for (const args of [['show'], ['show', '--json'], ['apply', '--json']]) {
    const out = await runCli([...args, '--site', s.site], { env: { CAIRN_SECRET_KEY_FILE: t1.file } });
    assert.equal(out.status, 0, out.stderr);
    assert.ok(!out.stdout.includes(PLAIN), `${args.join(' ')}: ${out.stdout}`);
  }
});

test('rekey: every !secret is encrypted again to the recipients secrets.yaml lists now for where it stands; comments and other values kept', async () => {
  const { s, t1, admin } = await secretSite();
  const t2 = await keygen('t2');
  // vars/all.yaml's secret is for every target; a secret in vars/targets/t1.yaml only for t1.
  const forT1 = await runCli(['secret', 'encrypt', '--site', s.site, '--for', 't1', 'only-for-t1']);
  writeFileInto(join(s.site, 'vars/targets/t1.yaml'), `# t1's own\nown: ${forT1.stdout}plain: kept\n`);
  writeFileSync(join(s.site, 'secrets.yaml'), `admins: [${admin.recipient}]\nrecipients:\n  t1: [${t1.recipient}]\n  t2: [${t2.recipient}]\n`);
  const open = async (file: string, line: number, key: string) => runCli(['secret', 'decrypt', `${join(s.site, file)}:${line}`], { env: { CAIRN_SECRET_KEY_FILE: key } });
  assert.notEqual((await open('vars/all.yaml', 2, t2.file)).status, 0, 't2 was not a recipient before');

  const r = await runCli(['secret', 'rekey', '--site', s.site], { env: { CAIRN_SECRET_KEY_FILE: admin.file } });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'rekeyed 2 secrets\n');
  const all = await open('vars/all.yaml', 2, t2.file);
  assert.equal(all.status, 0, all.stderr);
  assert.equal(all.stdout, `${PLAIN}\n`, 'the secret every target uses is now t2s too');
  assert.equal((await open('vars/all.yaml', 2, t1.file)).stdout, `${PLAIN}\n`);
  assert.equal((await open('vars/targets/t1.yaml', 2, t1.file)).stdout, 'only-for-t1\n');
  assert.notEqual((await open('vars/targets/t1.yaml', 2, t2.file)).status, 0, "t1's own secret stays t1's");
  const text = readFileSync(join(s.site, 'vars/targets/t1.yaml'), 'utf8');
  assert.match(text, /^# t1's own\nown: !secret \|\n {2}-----BEGIN AGE ENCRYPTED FILE-----/);
  assert.match(text, /\nplain: kept\n$/);
  assert.ok(!text.includes('only-for-t1'));

  const apply = await runCli(['apply', '--site', s.site], { env: { CAIRN_SECRET_KEY_FILE: t1.file } });
  assert.equal(apply.status, 0, apply.stderr);
});

test('rekey without an identity that opens a secret changes no file (exit 2)', async () => {
  const { s } = await secretSite();
  const stranger = await keygen('stranger');
  const before = readFileSync(join(s.site, 'vars/all.yaml'), 'utf8');
  const r = await runCli(['secret', 'rekey', '--site', s.site], { env: { CAIRN_SECRET_KEY_FILE: stranger.file } });
  assert.equal(r.status, 2, r.stdout);
  assert.match(r.stderr, /vars\/all\.yaml: a !secret this identity cannot open/);
  assert.equal(readFileSync(join(s.site, 'vars/all.yaml'), 'utf8'), before);
});

const etcdWhy = etcdUnavailable();
if (etcdWhy) process.stderr.write(`\n*** ETCD TESTS SKIPPED: secrets in an etcd store: ${etcdWhy} ***\n\n`);

describe('secrets and an etcd store', { skip: etcdWhy }, () => {
  let cluster: EtcdCluster;
  before(async () => {
    cluster = await startEtcdCluster(1);
  });
  after(async () => {
    await cluster?.stop();
  });

  test('push and a kept report leave no plaintext in any etcd key or value (etcdctl get --prefix)', async () => {
    const { s, t1 } = await secretSite();
    const env = { CAIRN_SECRET_KEY_FILE: t1.file };
    const pushed = await runCli(['push', '--site', s.site, '--store', cluster.url], { env });
    assert.equal(pushed.status, 0, pushed.stderr);
    const applied = await runCli(['apply', '--site', s.site, '--store', cluster.url], { env });
    assert.equal(applied.status, 0, applied.stderr);
    assert.equal(readFileSync(join(s.root, 'conf'), 'utf8'), `password=${PLAIN}\n`);
    const dump = cluster.etcdctl('get', '--prefix', '/', '--print-value-only=false');
    assert.equal(dump.code, 0, dump.stderr);
    assert.match(dump.stdout, /BEGIN AGE ENCRYPTED FILE/, 'the site went up, ciphertext and all');
    assert.match(dump.stdout, /reports\//, 'and the report');
    assert.ok(!dump.stdout.includes(PLAIN), 'no plaintext anywhere in the store');
  });
});
