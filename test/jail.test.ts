/**
 * The `jail` type and its `iocage` provider (DESIGN §6), end to end through the CLI. FreeBSD
 * cannot run here, so these are CONTRACT TESTS: a local target with FreeBSD's facts runs a
 * stateful fake `iocage` (test/fakes/iocage) that reproduces the real command line's messages,
 * streams, exit codes, `list -Hl` with JID `None`, prefix matching of names and fstab paths under
 * the jail's root (iocage/iocage @ cbf0f600, summarised in the fake's header). Each test asserts
 * on the fake's state and on its log of invocations and events (start, stop, create, destroy).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';
import { waitUntil } from './helpers/wait.ts';

const FAKE_DIR = resolve(import.meta.dirname, 'fakes/iocage');
const FREEBSD = {
  kernel: 'freebsd', os_family: 'freebsd', distribution: 'freebsd', release: '14.1', architecture: 'amd64', init_system: 'rc.d',
  package_manager: 'pkg', hostname: 'host1', addresses: { ipv4: ['192.0.2.1'], ipv6: [] }, cpus: 2, memory_mb: 4096,
};

interface NodeReport { ref: string; status: string; action: string; changes?: string[]; error?: string; reason?: string }
interface Report { targets: { status: string; counts: Record<string, number>; nodes: NodeReport[] }[] }

/** A FreeBSD host with the fake iocage (its own iocroot, 13.2-RELEASE fetched) and a site for it. */
function host() {
  const work = tempDir('cairn-jail-');
  const root = join(work, 'iocroot');
  const env = { PATH: `${FAKE_DIR}:${process.env.PATH}`, IOCAGE_FAKE_ROOT: root };
  const facts = join(work, 'facts.json');
  writeFileSync(facts, JSON.stringify(FREEBSD));
  const iocage = (...args: string[]) => {
    const r = spawnSync(join(FAKE_DIR, 'iocage'), args, { env: { ...process.env, ...env }, encoding: 'utf8' });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  assert.equal(iocage('fetch', '-r', '13.2-RELEASE').code, 0);
  const logLines = () => (existsSync(join(root, 'log')) ? readFileSync(join(root, 'log'), 'utf8').trim().split('\n') : []);
  const site = (parts: string) => makeSite({
    'cairn.yaml': `targets:\n  host1:\n    executor: local\n    state_dir: ${join(work, 'state')}\n    run: [s]\n`,
    'states/s.yaml': `s:\n${parts}`,
  });
  const run = async (mode: 'apply' | 'plan', s: string, extraEnv: Record<string, string> = {}) => {
    const r = await runCli([mode, '--site', s, '--facts', facts, '--json'], { env: { ...env, ...extraEnv } });
    assert.ok(r.status !== 70, r.stderr);
    const report = JSON.parse(r.stdout) as Report;
    return { status: r.status, stderr: r.stderr, target: report.targets[0]!, node: report.targets[0]!.nodes[0]! };
  };
  /** Runs `body` and returns the log lines it added. */
  const during = async <T>(body: () => Promise<T>): Promise<{ result: T; lines: string[] }> => {
    const before = logLines().length;
    const result = await body();
    return { result, lines: logLines().slice(before) };
  };
  const jails = () => iocage('list', '-Hl').stdout.trim().split('\n').filter(Boolean).map((l) => l.split('\t'));
  return { work, root, env, facts, iocage, logLines, site, run, during, jails };
}

/** Commands that change a jail, as the fake logs them. */
const MUTATING = /^iocage (create|set|start|stop|restart|destroy|fstab -[ar]|exec)\b/;
const events = (lines: string[]) => lines.filter((l) => l.startsWith('event: ') || MUTATING.test(l));

const WEB1 = (extra = '') => `  - jail: web1\n    release: 13.2-RELEASE\n    ip4_addr: "em0|10.0.0.5/24"\n    state: running\n${extra}`;

describe('iocage command contract: the fake reproduces the real CLI', () => {
  test('iocage command contract: list -Hl (JID None when stopped), stop of a stopped jail (stderr, exit 0), prefix matching, fstab under the jail root, templates', () => {
    const h = host();
    assert.equal(h.iocage('create', '-r', '13.2-RELEASE', '-n', 'web1', 'ip4_addr=em0|10.0.0.5/24').stdout, 'web1 successfully created!\n');
    assert.equal(h.iocage('create', '-r', '13.2-RELEASE', '-n', 'web10').code, 0);
    assert.deepEqual(h.jails(), [
      ['None', 'web1', 'off', 'down', 'jail', '13.2-RELEASE-p4', 'em0|10.0.0.5/24', '-', '-', 'no'],
      ['None', 'web10', 'off', 'down', 'jail', '13.2-RELEASE-p4', '-', '-', '-', 'no'],
    ]);
    const started = h.iocage('start', 'web1');
    assert.match(started.stdout, /^\* Starting web1\n {2}\+ Started OK\n/);
    assert.equal(h.jails()[0]![0], '1');
    const again = h.iocage('stop', 'web10');
    assert.deepEqual([again.code, again.stdout, again.stderr], [0, '', 'web10 is not running!\n']);
    const ambiguous = h.iocage('get', 'state', 'web');
    assert.deepEqual([ambiguous.code, ambiguous.stdout], [1, '']);
    assert.match(ambiguous.stderr, /^Multiple jails found for web:\n {2}web1 \(.*\)\n {2}web10 \(.*\)\n$/);
    assert.deepEqual([h.iocage('get', 'state', 'web1').stdout, h.iocage('get', 'state', 'web10').stdout], ['up\n', 'down\n']);
    assert.equal(h.iocage('get', 'state', 'nosuch').stderr, "jail 'nosuch' not found!\n");
    const src = join(h.work, 'data');
    mkdirSync(src);
    assert.equal(h.iocage('fstab', '-a', 'web1', `${src} /mnt nullfs ro 0 0`).stdout, "Successfully added mount to web1's fstab\n");
    assert.equal(h.iocage('fstab', '-Hl', 'web1').stdout, `0\t${src}\t${h.root}/jails/web1/root/mnt\tnullfs\tro\t0\t0\n`);
    assert.equal(h.iocage('set', 'boot=on', 'web1').stdout, 'boot: 0 -> 1\n');
    assert.equal(h.iocage('set', 'template=yes', 'web10').stdout, 'web10 converted to a template.\n');
    const template = h.iocage('start', 'web10');
    assert.deepEqual([template.code, template.stdout, template.stderr], [1, '', 'Please convert back to a jail before trying to start web10\n']);
    assert.equal(h.iocage('list', '-Htl').stdout, 'None\tweb10\toff\tdown\ttemplate\t13.2-RELEASE-p4\t-\t-\t-\tno\n');
    const running = h.iocage('exec', 'web10', 'true');
    assert.deepEqual([running.code, running.stderr], [1, 'web10 is not running! Please supply --force (-f) or start the jail\n']);
    assert.equal(h.iocage('create', '-r', '14.0-RELEASE', '-n', 'x').stderr, 'RELEASE: 14.0-RELEASE not found!\n');
  });
});

describe('iocage command contract: jail through the CLI', () => {
  test('iocage command contract: a fresh create (addresses, properties, fstab, started), then a re-run with 0 changes and no command that changes anything', async () => {
    const h = host();
    const src = join(h.work, 'data');
    mkdirSync(src);
    const s = h.site(WEB1(`    boot: true\n    properties:\n      allow_raw_sockets: true\n      exec_timeout: 90\n    fstab:\n      - ${src} /mnt\n`));
    const { result: first, lines } = await h.during(() => h.run('apply', s));
    assert.equal(first.status, 0, first.stderr);
    assert.deepEqual([first.node.ref, first.node.status, first.node.action], ['jail:web1', 'changed', 'create']);
    assert.deepEqual(events(lines), [
      'iocage create -n web1 -r 13.2-RELEASE ip4_addr=em0|10.0.0.5/24 allow_raw_sockets=1 exec_timeout=90',
      'event: created web1',
      `iocage fstab -a web1 ${src} /mnt nullfs ro 0 0`,
      'iocage set boot=on web1',
      'iocage start web1',
      'event: start web1',
    ]);
    assert.deepEqual(h.jails(), [['1', 'web1', 'on', 'up', 'jail', '13.2-RELEASE-p4', 'em0|10.0.0.5/24', '-', '-', 'no']]);
    assert.equal(h.iocage('get', 'allow_raw_sockets', 'web1').stdout, '1\n');
    const { result: again, lines: reread } = await h.during(() => h.run('apply', s));
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual([again.node.status, again.target.counts.changed], ['unchanged', 0]);
    assert.deepEqual(events(reread), []);
    assert.ok(reread.includes('iocage list -Hl') && reread.includes('iocage get all web1') && reread.includes('iocage fstab -Hl web1'), reread.join('\n'));
  });

  test('iocage command contract: state and boot change in place (update: no restart)', async () => {
    const h = host();
    assert.equal((await h.run('apply', h.site(WEB1()))).status, 0);
    const { result, lines } = await h.during(() => h.run('apply', h.site(WEB1().replace('state: running', 'state: stopped') + '    boot: true\n')));
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual([result.node.action, result.node.changes], ['update', ['state', 'boot']]);
    assert.deepEqual(events(lines), ['iocage set boot=on web1', 'iocage stop web1', 'event: stop web1']);
    assert.deepEqual(h.jails()[0]!.slice(0, 4), ['None', 'web1', 'on', 'down']);
  });

  test('iocage command contract: a reload stops, changes and starts again in that order; a stopped jail stays stopped; allow_reload: false refuses it', async () => {
    const h = host();
    assert.equal((await h.run('apply', h.site(WEB1()))).status, 0);
    const changed = WEB1().replace('10.0.0.5', '10.0.0.6') + '    properties:\n      exec_timeout: 120\n';
    const refused = await h.during(() => h.run('apply', h.site(`${changed}    allow_reload: false\n`)));
    assert.equal(refused.result.status, 1);
    assert.deepEqual([refused.result.node.status, refused.result.node.action], ['failed', 'reload']);
    assert.equal(refused.result.node.error, 'changing ip4_addr, properties needs a restart; set allow_reload: true to allow it');
    assert.deepEqual(events(refused.lines), []);

    const { result, lines } = await h.during(() => h.run('apply', h.site(changed)));
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual([result.node.status, result.node.action, result.node.changes], ['changed', 'reload', ['ip4_addr', 'properties']]);
    assert.deepEqual(events(lines), [
      'iocage stop web1', 'event: stop web1',
      'iocage set ip4_addr=em0|10.0.0.6/24 exec_timeout=120 web1',
      'iocage start web1', 'event: start web1',
    ]);
    assert.equal(h.jails()[0]![3], 'up');

    // State not given: a stopped jail is changed and left stopped.
    h.iocage('stop', 'web1');
    const unmanaged = WEB1().replace('    state: running\n', '').replace('10.0.0.5', '10.0.0.7');
    const quiet = await h.during(() => h.run('apply', h.site(unmanaged)));
    assert.equal(quiet.result.node.action, 'reload');
    assert.deepEqual(events(quiet.lines), ['iocage set ip4_addr=em0|10.0.0.7/24 web1']);
    assert.equal(h.jails()[0]![3], 'down');
  });

  test('iocage command contract: type is a reload: a running jail is stopped and made a template, and a template made a jail again and started', async () => {
    const h = host();
    const base = '  - jail: base\n    release: 13.2-RELEASE\n';
    assert.equal((await h.run('apply', h.site(`${base}    state: running\n`))).status, 0);
    const toTemplate = await h.during(() => h.run('apply', h.site(`${base}    type: template\n`)));
    assert.deepEqual([toTemplate.result.status, toTemplate.result.node.action, toTemplate.result.node.changes], [0, 'reload', ['type']]);
    assert.deepEqual(events(toTemplate.lines), ['iocage stop base', 'event: stop base', 'iocage set template=yes base']);
    assert.deepEqual(h.jails(), []);
    const toJail = await h.during(() => h.run('apply', h.site(`${base}    state: running\n`)));
    assert.deepEqual([toJail.result.status, toJail.result.node.action, toJail.result.node.changes], [0, 'reload', ['state', 'type']]);
    assert.deepEqual(events(toJail.lines), ['iocage set template=no base', 'iocage start base', 'event: start base']);
    assert.deepEqual(h.jails()[0]!.slice(1, 5), ['base', 'off', 'up', 'jail']);
  });

  test('iocage command contract: a reload whose change iocage refuses starts the jail again and says so', async () => {
    const h = host();
    const src = join(h.work, 'data');
    mkdirSync(src);
    assert.equal((await h.run('apply', h.site(WEB1()))).status, 0);
    const { result, lines } = await h.during(() => h.run('apply', h.site(WEB1(`    fstab:\n      - ${src} /nosuch\n`))));
    assert.deepEqual([result.status, result.node.status, result.node.action], [1, 'failed', 'reload']);
    assert.equal(result.node.error, `iocage fstab exited with 1:\nDestination: ${h.root}/jails/web1/root/nosuch does not exist or is not a directory.\n` +
      'jail web1 was started again with the changes made before this one');
    assert.deepEqual(events(lines), ['iocage stop web1', 'event: stop web1', `iocage fstab -a web1 ${src} /nosuch nullfs ro 0 0`, 'iocage start web1', 'event: start web1']);
    assert.equal(h.jails()[0]![3], 'up');
  });

  test('iocage command contract: a name iocage holds for another jail (web.1 is web_1 to it) fails the create and removes nothing', async () => {
    const h = host();
    assert.equal(h.iocage('create', '-r', '13.2-RELEASE', '-n', 'web_1').code, 0);
    const { result, lines } = await h.during(() => h.run('apply', h.site('  - jail: web.1\n    release: 13.2-RELEASE\n')));
    assert.deepEqual([result.status, result.node.action], [1, 'create']);
    assert.equal(result.node.error, 'iocage create exited with 1:\nJail: web.1 already exists!');
    assert.deepEqual(events(lines), ['iocage create -n web.1 -r 13.2-RELEASE']);
    assert.deepEqual(h.jails().map((j) => j[1]), ['web_1']);
  });

  test('iocage command contract: a property iocage does not have fails the node with what iocage lists, and nothing is changed', async () => {
    const h = host();
    assert.equal((await h.run('apply', h.site(WEB1()))).status, 0);
    const { result, lines } = await h.during(() => h.run('apply', h.site(WEB1('    properties:\n      allow_nothing: 1\n'))));
    assert.deepEqual([result.status, result.node.status], [1, 'failed']);
    assert.equal(result.node.error, 'properties: allow_nothing is not an iocage property (`iocage get all default` does not list it)');
    assert.deepEqual(events(lines), []);
  });

  test('iocage command contract: an fstab change is a reload; entries are removed and added so the fstab is exactly the list', async () => {
    const h = host();
    const [a, b] = ['a', 'b'].map((n) => {
      mkdirSync(join(h.work, n));
      return join(h.work, n);
    });
    assert.equal((await h.run('apply', h.site(WEB1(`    fstab:\n      - ${a} /mnt\n`)))).status, 0);
    const { result, lines } = await h.during(() => h.run('apply', h.site(WEB1(`    fstab:\n      - ${b} /mnt nullfs rw\n      - ${a} /media\n`))));
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual([result.node.action, result.node.changes], ['reload', ['fstab']]);
    assert.deepEqual(events(lines), [
      'iocage stop web1', 'event: stop web1',
      `iocage fstab -r web1 ${a} /mnt nullfs ro 0 0`,
      `iocage fstab -a web1 ${b} /mnt nullfs rw 0 0`,
      `iocage fstab -a web1 ${a} /media nullfs ro 0 0`,
      'iocage start web1', 'event: start web1',
    ]);
    assert.equal(h.iocage('fstab', '-Hl', 'web1').stdout,
      `0\t${b}\t${h.root}/jails/web1/root/mnt\tnullfs\trw\t0\t0\n1\t${a}\t${h.root}/jails/web1/root/media\tnullfs\tro\t0\t0\n`);
    assert.equal((await h.run('apply', h.site(WEB1(`    fstab:\n      - ${b} /mnt nullfs rw\n      - ${a} /media\n`)))).node.status, 'unchanged');
  });

  test('iocage command contract: a release change is a rebuild, refused by default naming the attribute and allow_rebuild, done when allowed', async () => {
    const h = host();
    assert.equal(h.iocage('fetch', '-r', '14.0-RELEASE').code, 0);
    assert.equal((await h.run('apply', h.site(WEB1()))).status, 0);
    const newer = WEB1().replace('13.2-RELEASE', '14.0-RELEASE');
    const refused = await h.during(() => h.run('apply', h.site(newer)));
    assert.equal(refused.result.status, 1);
    assert.deepEqual([refused.result.node.status, refused.result.node.action], ['failed', 'rebuild']);
    assert.equal(refused.result.node.error, 'changing release means destroying and recreating jail:web1; set allow_rebuild: true to allow it');
    assert.deepEqual(events(refused.lines), []);

    const { result, lines } = await h.during(() => h.run('apply', h.site(`${newer}    allow_rebuild: true\n`)));
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual([result.node.status, result.node.action, result.node.changes], ['changed', 'rebuild', ['release']]);
    assert.deepEqual(events(lines), [
      'iocage destroy -f web1', 'event: stop web1', 'event: destroy web1',
      'iocage create -n web1 -r 14.0-RELEASE ip4_addr=em0|10.0.0.5/24', 'event: created web1',
      'iocage start web1', 'event: start web1',
    ]);
    assert.deepEqual(h.jails()[0]!.slice(3, 6), ['up', 'jail', '14.0-RELEASE-p4']);
    assert.equal((await h.run('apply', h.site(`${newer}    allow_rebuild: true\n`))).node.status, 'unchanged');
  });

  test('iocage command contract: a rebuild whose create fails says the old jail is gone, nothing is left, and the next run creates it', async () => {
    const h = host();
    assert.equal((await h.run('apply', h.site(WEB1()))).status, 0);
    const missing = `${WEB1().replace('13.2-RELEASE', '15.0-RELEASE')}    allow_rebuild: true\n`;
    const failed = await h.run('apply', h.site(missing));
    assert.equal(failed.status, 1);
    assert.equal(failed.node.action, 'rebuild');
    assert.match(failed.node.error!, /^rebuilding jail web1: the old jail was destroyed, but creating the new one failed:\niocage create exited with 1:\nRELEASE: 15\.0-RELEASE not found!\nnothing of jail web1 is left\nFix the cause and apply again: web1 then reads as absent and is created \(no allow_rebuild needed\)\.$/);
    assert.deepEqual(h.jails(), []);
    h.iocage('fetch', '-r', '15.0-RELEASE');
    const created = await h.run('apply', h.site(WEB1().replace('13.2-RELEASE', '15.0-RELEASE')));
    assert.deepEqual([created.status, created.node.action], [0, 'create']);
  });

  test('iocage command contract: ensure: absent destroys the jail (running or not); absent again is in sync', async () => {
    const h = host();
    assert.equal((await h.run('apply', h.site(WEB1()))).status, 0);
    const gone = '  - jail: web1\n    ensure: absent\n';
    const { result, lines } = await h.during(() => h.run('apply', h.site(gone)));
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual([result.node.status, result.node.action], ['changed', 'destroy']);
    assert.deepEqual(events(lines), ['iocage destroy -f web1', 'event: stop web1', 'event: destroy web1']);
    assert.deepEqual(h.jails(), []);
    assert.equal((await h.run('apply', h.site(gone))).node.status, 'unchanged');
  });

  test('iocage command contract: plan shows create, update, reload, rebuild and destroy and runs nothing that changes a jail', async () => {
    const h = host();
    h.iocage('fetch', '-r', '14.0-RELEASE');
    const plans: [string, string][] = [];
    const { lines } = await h.during(async () => {
      plans.push([(await h.run('plan', h.site(WEB1()))).node.action, 'create']);
      assert.equal((await h.run('apply', h.site(WEB1()))).status, 0);
      return undefined;
    });
    const planOnly = async (parts: string, action: string) => {
      const { result, lines: during } = await h.during(() => h.run('plan', h.site(parts)));
      assert.equal(result.node.status, 'would-change', result.stderr);
      plans.push([result.node.action, action]);
      assert.deepEqual(events(during), [], `plan of ${action} ran:\n${during.join('\n')}`);
    };
    assert.deepEqual(events(lines.slice(0, lines.indexOf('iocage create -n web1 -r 13.2-RELEASE ip4_addr=em0|10.0.0.5/24'))), []);
    await planOnly(WEB1().replace('running', 'stopped'), 'update');
    await planOnly(WEB1().replace('10.0.0.5', '10.0.0.9'), 'reload');
    await planOnly(`${WEB1().replace('13.2-RELEASE', '14.0-RELEASE')}    allow_rebuild: true\n`, 'rebuild');
    await planOnly('  - jail: web1\n    ensure: absent\n', 'destroy');
    for (const [got, want] of plans) assert.equal(got, want);
    assert.deepEqual(h.jails()[0]!.slice(0, 6), ['1', 'web1', 'off', 'up', 'jail', '13.2-RELEASE-p4']);
  });

  test('iocage command contract: user_data runs once inside the new jail (iocage exec NAME /bin/sh), not on a re-run; a change is a rebuild', async () => {
    const h = host();
    const withData = (text: string, extra = '') => h.site(WEB1(`    user_data: |\n      echo ${text} > configured\n${extra}`).replace('state: running', 'state: stopped'));
    const { result, lines } = await h.during(() => h.run('apply', withData('one')));
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(events(lines), [
      'iocage create -n web1 -r 13.2-RELEASE ip4_addr=em0|10.0.0.5/24', 'event: created web1',
      'iocage start web1', 'event: start web1',
      'iocage exec web1 /bin/sh', 'event: exec web1 /bin/sh -c /bin/sh <<"echo one > configured\\n"',
      'iocage stop web1', 'event: stop web1',
    ]);
    const marker = join(h.root, 'jails/web1/root/configured');
    assert.equal(readFileSync(marker, 'utf8'), 'one\n');
    assert.equal(h.jails()[0]![3], 'down');

    const again = await h.during(() => h.run('apply', withData('one')));
    assert.equal(again.result.node.status, 'unchanged');
    assert.deepEqual(events(again.lines), []);

    const refused = await h.run('apply', withData('two'));
    assert.deepEqual([refused.node.status, refused.node.action, refused.node.changes], ['failed', 'rebuild', ['user_data']]);
    assert.equal(refused.node.error, 'changing user_data means destroying and recreating jail:web1; set allow_rebuild: true to allow it');
    const rebuilt = await h.run('apply', withData('two', '    allow_rebuild: true\n'));
    assert.deepEqual([rebuilt.status, rebuilt.node.action], [0, 'rebuild']);
    assert.equal(readFileSync(marker, 'utf8'), 'two\n');
    assert.equal((await h.run('apply', withData('two', '    allow_rebuild: true\n'))).node.status, 'unchanged');
  });

  test('iocage command contract: user_data that fails destroys the new jail and says so; the next run creates it again', async () => {
    const h = host();
    const failing = await h.run('apply', h.site(WEB1('    user_data: |\n      echo half > half\n      exit 3\n')));
    assert.equal(failing.status, 1);
    assert.equal(failing.node.error, 'its user data (iocage exec /bin/sh) exited with 3\nthe half-made jail web1 was destroyed: nothing of it is left');
    assert.deepEqual(h.jails(), []);
    const fixed = await h.run('apply', h.site(WEB1('    user_data: |\n      echo whole > whole\n')));
    assert.deepEqual([fixed.status, fixed.node.action], [0, 'create']);
  });

  test('iocage command contract: a template (created as a jail, converted after), a jail cloned from it, and pkglist installed by create', async () => {
    const h = host();
    const s = h.site('  - jail: base\n    release: 13.2-RELEASE\n    type: template\n    ip4_addr: "em0|10.0.0.2/24"\n    pkglist: [nginx, curl]\n' +
      '  - jail: www\n    template: base\n    state: running\n    require: jail:base\n');
    const { result, lines } = await h.during(() => h.run('apply', s));
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(result.target.nodes.map((n) => [n.ref, n.action]), [['jail:base', 'create'], ['jail:www', 'create']]);
    const created = events(lines);
    assert.match(created[0]!, /^iocage create -n base -r 13\.2-RELEASE -p \/tmp\/cairn-pkglist-[0-9a-f-]+\.json ip4_addr=em0\|10\.0\.0\.2\/24$/);
    assert.deepEqual(created.slice(1), [
      'event: created base', 'event: pkg install base nginx curl', 'iocage set template=yes base',
      'iocage create -n www -t base', 'event: created www', 'iocage start www', 'event: start www',
    ]);
    assert.equal(existsSync(created[0]!.split(' ')[6]!), false, 'the pkglist file is removed');
    assert.deepEqual(h.iocage('list', '-Htl').stdout.split('\t').slice(1, 5), ['base', 'off', 'down', 'template']);
    assert.deepEqual(h.jails()[0]!.slice(1, 9), ['www', 'off', 'up', 'jail', '13.2-RELEASE-p4', '-', '-', 'base']);
    const again = await h.run('apply', s);
    assert.deepEqual([again.status, again.target.counts.changed], [0, 0]);
    // An address iocage gives the jail itself (dhcp) is one too.
    const dhcp = await h.during(() => h.run('apply', h.site('  - jail: dhcp1\n    release: 13.2-RELEASE\n    properties: {dhcp: on}\n    pkglist: [tmux]\n')));
    assert.equal(dhcp.result.status, 0, dhcp.result.stderr);
    assert.ok(dhcp.lines.includes('event: pkg install dhcp1 tmux'), dhcp.lines.join('\n'));
  });

  test('iocage command contract: a name is never matched by prefix: jail web is absent while web1 exists, and is created beside it', async () => {
    const h = host();
    assert.equal(h.iocage('create', '-r', '13.2-RELEASE', '-n', 'web1').code, 0);
    const s = h.site('  - jail: web\n    release: 13.2-RELEASE\n');
    const planned = await h.run('plan', s);
    assert.deepEqual([planned.node.status, planned.node.action], ['would-change', 'create']);
    const r = await h.run('apply', s);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(h.jails().map((j) => j[1]), ['web', 'web1']);
    const absent = await h.during(() => h.run('apply', h.site('  - jail: we\n    ensure: absent\n')));
    assert.equal(absent.result.node.status, 'unchanged');
    assert.deepEqual(events(absent.lines), []);
  });

  test('iocage command contract: a notification restarts a running jail (stop, then start) and leaves a stopped one alone', async () => {
    const h = host();
    const conf = join(h.work, 'jail.conf');
    const s = (content: string, state: string) => h.site(`  - file: ${conf}\n    content: ${content}\n    notify: jail:web1\n${WEB1().replace('running', state)}`);
    assert.equal((await h.run('apply', s('a', 'running'))).status, 0);
    const { result, lines } = await h.during(() => h.run('apply', s('b', 'running')));
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(result.target.nodes.map((n) => [n.ref, n.action]), [[`file:${conf}`, 'update'], ['jail:web1', 'refresh']]);
    assert.deepEqual(events(lines), ['iocage stop web1', 'event: stop web1', 'iocage start web1', 'event: start web1']);
    assert.equal((await h.run('apply', s('b', 'stopped'))).node.action, 'none');
    const quiet = await h.during(() => h.run('apply', s('c', 'stopped')));
    assert.deepEqual(quiet.result.target.nodes.map((n) => [n.status, n.reason]), [['changed', undefined], ['unchanged', 'jail web1 is not running']]);
    assert.deepEqual(events(quiet.lines), []);
  });

  test('iocage command contract: export refuses a site with a jail, naming the part (no shell trait)', async () => {
    const h = host();
    const s = h.site(WEB1());
    const r = await runCli(['export', '--site', s, '--facts', h.facts], { env: h.env });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /jail:web1/);
    assert.equal(r.stdout, '');
  });
});

describe('iocage command contract: an interrupted create leaves no half jail', () => {
  const BIN = resolve(import.meta.dirname, '../src/cli/bin.ts');
  /** Starts `cairn apply` in a process group of its own, with the fake blocking in create until signalled. */
  async function blockedCreate() {
    const h = host();
    const s = h.site(WEB1());
    const child = spawn(process.execPath, ['--import', 'tsx', BIN, 'apply', '--site', s, '--facts', h.facts],
      { cwd: resolve(import.meta.dirname, '..'), env: { ...process.env, ...h.env, NO_COLOR: '1', IOCAGE_FAKE_BLOCK_CREATE: 'web1' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    await waitUntil(() => h.logLines().includes('event: create web1 blocking') || child.exitCode !== null, () => `the create to block:\n${output}`);
    assert.equal(child.exitCode, null, output);
    assert.equal(existsSync(join(h.root, 'jails/web1/config.json')), true, 'the half-made jail is there while create blocks');
    return { h, child, exited, output: () => output };
  }

  test('iocage command contract: Ctrl-C (SIGINT to the process group): iocage destroys what it made, Cairn reports the node failed, exit 1', async () => {
    const { h, child, exited, output } = await blockedCreate();
    process.kill(-child.pid!, 'SIGINT');
    assert.equal(await exited, 1, output());
    assert.deepEqual(readdirSync(join(h.root, 'jails')), [], `${output()}\n${h.logLines().join('\n')}`);
    assert.match(output(), /jail:web1 .*FAILED|failed/i);
    assert.match(output(), /nothing of jail web1 is left|the half-made jail web1 was destroyed/);
  });

  test('iocage command contract: SIGINT to Cairn alone: iocage is stopped (SIGTERM leaves its half jail) and Cairn destroys the half jail', async () => {
    const { h, child, exited, output } = await blockedCreate();
    process.kill(child.pid!, 'SIGINT');
    assert.equal(await exited, 1, output());
    assert.deepEqual(readdirSync(join(h.root, 'jails')), []);
    assert.match(output(), /cairn: SIGINT: finishing the node under way \(a long operation stops early and cleans up\) and starting no other/);
    assert.match(output(), /interrupted\n\s+the half-made jail web1 was destroyed: nothing of it is left/);
    assert.ok(h.logLines().includes('iocage destroy -f web1'), h.logLines().join('\n'));
  });
});

describe('iocage command contract: progress of a create on a terminal', { skip: spawnSync('script', ['--version']).status !== 0 && 'script(1) is missing' }, () => {
  test("iocage command contract: the terminal's live line shows the create's step while it runs", async () => {
    const h = host();
    const gate = join(h.work, 'gate');
    assert.equal(spawnSync('mkfifo', [gate]).status, 0);
    // The user data waits on the gate, so the step is on screen until the test opens it.
    const s = h.site(WEB1(`    user_data: |\n      read line < ${gate}\n`));
    const quote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
    const command = [process.execPath, '--import', 'tsx', resolve(import.meta.dirname, '../src/cli/bin.ts'), 'apply', '--site', s, '--facts', h.facts].map(quote).join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: resolve(import.meta.dirname, '..'), env: { ...process.env, ...h.env, NO_COLOR: '1' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let screen = '';
    child.stdout.on('data', (d: Buffer) => (screen += d.toString()));
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
    await waitUntil(() => /jail:web1 \(\d+\.\d s\): running its user data \(1\/3\)/.test(screen) || child.exitCode !== null, () => `the step on screen:\n${screen}`);
    assert.equal(child.exitCode, null, screen);
    writeFileSync(gate, 'go\n');
    assert.equal(await exited, 0, screen);
    assert.match(screen, /changed +jail:web1 \(create\)/);
  });
});
