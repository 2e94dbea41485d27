/**
 * The run semantics of DESIGN §5, each through the CLI on real files in temp folders and real
 * processes, asserting exact statuses, reasons, order and exit codes.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from './helpers/cli.ts';
import { converge, lines, scratchSite } from './helpers/converge.ts';

const R = '<%= it.vars.root %>';

test('statuses: a first run changes, a second reports nothing changed', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - directory: ${R}/d\n  - file: ${R}/d/f\n    content: "hello\\n"\n    mode: "0640"\n  - symlink: ${R}/link\n    target: ${R}/d/f\n  - line: ${R}/d/conf\n    text: "a = 1"\n  - exec: touch ${R}/done\n    creates: ${R}/done\n`,
  });
  const first = await converge(s, 'apply', [], 0);
  assert.deepEqual(lines(first.nodes), [
    `changed directory:${s.root}/d`, `changed file:${s.root}/d/f`, `changed symlink:${s.root}/link`,
    `changed line:${s.root}/d/conf#a = 1`, `changed exec:touch ${s.root}/done`,
  ]);
  assert.deepEqual(first.nodes.map((n) => n.action), ['create', 'create', 'create', 'create', 'run']);
  assert.equal(readFileSync(join(s.root, 'd/f'), 'utf8'), 'hello\n');
  assert.equal(statSync(join(s.root, 'd/f')).mode & 0o777, 0o640);
  const second = await converge(s, 'apply', [], 0);
  assert.deepEqual(second.target.counts, { changed: 0, unchanged: 5, failed: 0, skipped: 0 });
  assert.ok(second.nodes.every((n) => n.action === 'none'));
});

test('an attribute change is an update naming the attribute; unmanaged attributes are left alone', async () => {
  const s = scratchSite('s', { 'states/s.yaml': `s:\n  - file: ${R}/f\n    content: "<%= it.vars.v %>"\n` });
  await converge(s, 'apply', ['--var', 'v=one'], 0);
  const r = await converge(s, 'apply', ['--var', 'v=two'], 0);
  assert.deepEqual(r.nodes.map((n) => [n.status, n.action, n.changes]), [['changed', 'update', ['content']]]);
});

test('order: declaration order, requisites first, the next invocation after the previous one\'s handlers', async () => {
  const log = (word: string) => `    - exec: echo ${word} >> ${R}/log\n`;
  const s = scratchSite('a, b', {
    'states/s.yaml': `a:\n  parts:\n    - file: ${R}/x\n      content: x\n      notify: h\n${log('a2').replace('    - ', '    - ')}` +
      `b:\n  parts:\n${log('b1')}h:\n  lazy: true\n  parts:\n${log('handler')}`,
  });
  await converge(s, 'apply', [], 0);
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 'a2\nhandler\nb1\n');
});

test('require: a failure skips its dependants (and theirs), unrelated nodes go on, exit 1', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - exec: "false"\n    id: broken\n  - file: ${R}/a\n    content: a\n    require: broken\n  - file: ${R}/b\n    content: b\n    require: file:${R}/a\n  - file: ${R}/c\n    content: c\n`,
  });
  const r = await converge(s, 'apply', [], 1);
  assert.deepEqual(lines(r.nodes), [
    'failed exec:false',
    `skipped file:${s.root}/a [dependency failed: exec:false]`,
    `skipped file:${s.root}/b [dependency failed: file:${s.root}/a]`,
    `changed file:${s.root}/c`,
  ]);
  assert.match(r.nodes[0]!.error!, /exited with 1/);
  assert.deepEqual(r.target.counts, { changed: 1, unchanged: 0, failed: 1, skipped: 2 });
  assert.equal(r.target.status, 'failed');
});

test('--fail-fast stops the target at its first failure', async () => {
  const s = scratchSite('s', { 'states/s.yaml': `s:\n  - exec: "false"\n  - file: ${R}/c\n    content: c\n` });
  const r = await converge(s, 'apply', ['--fail-fast'], 1);
  assert.deepEqual(lines(r.nodes), ['failed exec:false', `skipped file:${s.root}/c [fail-fast: stopped after exec:false failed]`]);
  assert.ok(!existsSync(join(s.root, 'c')));
});

test('notify: a handler triggered twice in one invocation runs once, at its end; nothing changed, nothing runs', async () => {
  const s = scratchSite('s, t', {
    'states/s.yaml': `s:\n  - file: ${R}/a\n    content: a\n    notify: reload\n  - file: ${R}/b\n    content: b\n    notify: reload\n  - exec: echo s-last >> ${R}/log\nt:\n  - exec: echo t >> ${R}/log\n` +
      `reload:\n  lazy: true\n  parts:\n    - exec: echo reload >> ${R}/log\n`,
  });
  const r = await converge(s, 'apply', [], 0);
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 's-last\nreload\nt\n');
  const handler = r.nodes.find((n) => n.ref.startsWith('exec:echo reload'))!;
  assert.equal(handler.reason, `notified by file:${s.root}/b`);
  await converge(s, 'apply', [], 0);
  // Unguarded commands run every time; the handler does not, since nothing notified it.
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 's-last\nreload\nt\ns-last\nt\n');
});

test('listen is notify reversed; a deferred handler runs once at the end of the run', async () => {
  const s = scratchSite('one, two, audit', {
    'states/s.yaml': `one:\n  - file: ${R}/a\n    content: a\ntwo:\n  - file: ${R}/b\n    content: b\n  - exec: echo two-done >> ${R}/log\n` +
      `audit:\n  lazy: true\n  defer: true\n  parts:\n    - exec: echo audit >> ${R}/log\n      listen: [file:${R}/a, file:${R}/b]\n`,
  });
  await converge(s, 'apply', [], 0);
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 'two-done\naudit\n');
});

test('a notified non-lazy node is refreshed: an exec runs again, once, unless its own guard says it is not needed', async () => {
  const cmd = (word: string) => `touch ${R}/${word}; echo ${word} >> ${R}/log`;
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - file: ${R}/conf\n    content: "<%= it.vars.v %>"\n    notify: [plain, creates, unless, onlyif]\n` +
      `  - exec: ${cmd('plain')}\n    id: plain\n` +
      `  - exec: ${cmd('creates')}\n    id: creates\n    creates: ${R}/creates\n` +
      `  - exec: ${cmd('unless')}\n    id: unless\n    unless: test -f ${R}/unless\n` +
      `  - exec: ${cmd('onlyif')}\n    id: onlyif\n    onlyif: test ! -f ${R}/onlyif\n`,
  });
  const first = await converge(s, 'apply', ['--var', 'v=1'], 0);
  // Notified, and due to run anyway: each runs once in its turn, not a second time for the notification.
  assert.deepEqual(first.nodes.map((n) => `${n.status}/${n.action}`), ['changed/create', 'changed/run', 'changed/run', 'changed/run', 'changed/run']);
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 'plain\ncreates\nunless\nonlyif\n');
  const second = await converge(s, 'apply', ['--var', 'v=2'], 0);
  assert.deepEqual(lines(second.nodes), [
    `changed file:${s.root}/conf`,
    `changed exec:${cmd('plain').replaceAll(R, s.root)}`,
    `unchanged exec:${cmd('creates').replaceAll(R, s.root)} [not run: creates: ${s.root}/creates exists]`,
    `unchanged exec:${cmd('unless').replaceAll(R, s.root)} [not run: unless: exited 0]`,
    `unchanged exec:${cmd('onlyif').replaceAll(R, s.root)} [not run: onlyif: exited 1]`,
  ]);
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 'plain\ncreates\nunless\nonlyif\nplain\n');
  // A guard that kept the command from running still delivered the notification.
  assert.deepEqual(JSON.parse(readFileSync(join(s.stateDir, 'pending.json'), 'utf8')).pending, []);
});

test('a notification whose handler fails is kept in the state dir and delivered by the next run, once', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - file: ${R}/conf\n    content: x\n    notify: h\nh:\n  lazy: true\n  parts:\n    - exec: test -f ${R}/ok && echo handled >> ${R}/log\n`,
  });
  const first = await converge(s, 'apply', [], 1);
  assert.equal(first.nodes[1]!.status, 'failed');
  assert.match(readFileSync(join(s.stateDir, 'pending.json'), 'utf8'), /"from": "file:/);
  writeFileSync(join(s.root, 'ok'), '');
  const second = await converge(s, 'apply', [], 0);
  assert.deepEqual(lines(second.nodes), [`unchanged file:${s.root}/conf`, `changed exec:test -f ${s.root}/ok && echo handled >> ${s.root}/log [notified by a pending notification]`]);
  const third = await converge(s, 'apply', [], 0);
  assert.deepEqual(third.target.counts, { changed: 0, unchanged: 1, failed: 0, skipped: 0 });
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 'handled\n');
});

for (const file of ['pending.json', 'metadata.json']) {
  test(`a damaged ${file} is an error naming it, never read as empty: the target's run stops before any change`, async () => {
    const s = scratchSite('s', { 'states/s.yaml': `s:\n  - file: ${R}/f\n    content: x\n    notify: h\nh:\n  lazy: true\n  parts:\n    - exec: touch ${R}/handled\n` });
    mkdirSync(s.stateDir, { recursive: true });
    for (const [content, why] of [['{"version": 1, "pending": [', /not JSON/], ['{"version": 1, "pending": "h", "inputs": []}', /not the content Cairn writes there/]] as const) {
      writeFileSync(join(s.stateDir, file), content);
      for (const mode of ['plan', 'apply'] as const) {
        const r = await converge(s, mode, [], 3);
        assert.equal(r.target.status, 'unreachable');
        assert.ok(r.target.error!.startsWith(`${s.stateDir}/${file}: damaged (`), r.target.error);
        assert.match(r.target.error!, why);
        assert.match(r.target.error!, /Fix it, or remove it/);
        assert.deepEqual(r.nodes, []);
      }
    }
    assert.ok(!existsSync(join(s.root, 'f')));
    const plain = await runCli(['apply', '--site', s.site]);
    assert.equal(plain.status, 3);
    assert.match(plain.stdout + plain.stderr, new RegExp(`${s.stateDir}/${file}: damaged`));
  });
}

test('a notification is never lost: a handler skipped by --fail-fast stays pending and the next run delivers it, once', async () => {
  const refreshed = `exec:echo refreshed >> ${R}/log`;
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - file: ${R}/conf\n    content: x\n    notify: [h, ${refreshed}]\n  - exec: "<%= it.vars.cmd %>"\n` +
      `  - ${refreshed.replace(':', ': ')}\n    creates: ${R}/log\nh:\n  lazy: true\n  parts:\n    - exec: echo handled >> ${R}/log\n`,
  });
  writeFileSync(join(s.root, 'log'), '');
  const first = await converge(s, 'apply', ['--fail-fast', '--var', 'cmd=false'], 1);
  const stopped = 'fail-fast: stopped after exec:false failed';
  assert.deepEqual(lines(first.nodes), [
    `changed file:${s.root}/conf`, 'failed exec:false', `skipped exec:echo refreshed >> ${s.root}/log [${stopped}]`,
    `skipped exec:echo handled >> ${s.root}/log [${stopped}]`,
  ]);
  const pending = () => (JSON.parse(readFileSync(join(s.stateDir, 'pending.json'), 'utf8')) as { pending: { node: string }[] }).pending.map((p) => p.node);
  assert.deepEqual(pending().sort(), [`exec:echo handled >> ${s.root}/log`, `exec:echo refreshed >> ${s.root}/log`]);
  const second = await converge(s, 'apply', ['--fail-fast', '--var', 'cmd=true'], 0);
  assert.deepEqual(lines(second.nodes), [
    `unchanged file:${s.root}/conf`, 'changed exec:true',
    // Refreshed for the pending notification, the exec still honours its guard: delivered all the same.
    `unchanged exec:echo refreshed >> ${s.root}/log [not run: creates: ${s.root}/log exists]`,
    `changed exec:echo handled >> ${s.root}/log [notified by a pending notification]`,
  ]);
  assert.deepEqual(pending(), []);
  const third = await converge(s, 'apply', ['--var', 'cmd=true'], 0);
  assert.deepEqual(third.target.counts, { changed: 1, unchanged: 2, failed: 0, skipped: 0 });
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 'handled\n');
});

test('a notification is never lost: a handler skipped for a failed requisite stays pending and the next run delivers it', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - exec: "<%= it.vars.cmd %>"\n    id: prep\n  - file: ${R}/conf\n    content: x\n    notify: h\n` +
      `h:\n  lazy: true\n  parts:\n    - exec: echo handled >> ${R}/log\n      require: prep\n`,
  });
  const first = await converge(s, 'apply', ['--var', 'cmd=false'], 1);
  assert.deepEqual(lines(first.nodes), ['failed exec:false', `changed file:${s.root}/conf`, `skipped exec:echo handled >> ${s.root}/log [dependency failed: exec:false]`]);
  assert.match(readFileSync(join(s.stateDir, 'pending.json'), 'utf8'), /"node": "exec:echo handled/);
  const second = await converge(s, 'apply', ['--var', 'cmd=true'], 0);
  assert.deepEqual(lines(second.nodes), ['changed exec:true', `unchanged file:${s.root}/conf`, `changed exec:echo handled >> ${s.root}/log [notified by a pending notification]`]);
  const third = await converge(s, 'apply', ['--var', 'cmd=true'], 0);
  assert.equal(third.nodes.length, 2);
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 'handled\n');
});

test('onchanges on a node that failed is skipped (no changes), not a failure, and what requires it still runs', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - exec: "false"\n    id: job\n  - exec: echo watcher >> ${R}/log\n    id: watcher\n    onchanges: job\n` +
      `  - file: ${R}/after\n    content: x\n    require: watcher\n  - file: ${R}/further\n    content: x\n    require: file:${R}/after\n`,
  });
  const r = await converge(s, 'apply', [], 1);
  assert.deepEqual(lines(r.nodes), [
    'failed exec:false', `skipped exec:echo watcher >> ${s.root}/log [no changes]`, `changed file:${s.root}/after`, `changed file:${s.root}/further`,
  ]);
  assert.deepEqual(r.target.counts, { changed: 2, unchanged: 0, failed: 1, skipped: 1 });
  assert.ok(!existsSync(join(s.root, 'log')));
});

test('handler chains: a handler that notifies another, transitively, runs with it before the next invocation', async () => {
  const h = (name: string, notify?: string) => `${name}:\n  lazy: true\n  parts:\n    - exec: echo ${name} >> ${R}/log\n${notify ? `      notify: ${notify}\n` : ''}`;
  const s = scratchSite('a, b', {
    // Declared in reverse: each handler notifies one declared before it.
    'states/s.yaml': `${h('h3')}${h('h2', 'h3')}${h('h1', 'h2')}a:\n  - file: ${R}/x\n    content: x\n    notify: h1\nb:\n  - exec: echo b >> ${R}/log\n`,
  });
  const r = await converge(s, 'apply', [], 0);
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 'h1\nh2\nh3\nb\n');
  assert.deepEqual(r.nodes.map((n) => n.reason ?? ''), [
    '', `notified by file:${s.root}/x`, `notified by exec:echo h1 >> ${s.root}/log`, `notified by exec:echo h2 >> ${s.root}/log`, '',
  ]);
});

test('handler order: handlers due together run in the order their states are declared in the site, not notified in', async () => {
  const h = (name: string) => `${name}:\n  lazy: true\n  parts:\n    - exec: echo ${name} >> ${R}/log\n`;
  const s = scratchSite('s, t', {
    // Declared zulu (a.yaml), then alpha and mike (b.yaml); notified mike, zulu, alpha.
    'states/a.yaml': `s:\n  - file: ${R}/x\n    content: x\n    notify: [mike, zulu]\n  - file: ${R}/y\n    content: y\n    notify: alpha\n${h('zulu')}`,
    'states/b.yaml': `t:\n  - file: ${R}/z\n    content: z\n    notify: [mike, alpha]\n${h('alpha')}${h('mike')}`,
  });
  await converge(s, 'apply', [], 0);
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 'zulu\nalpha\nmike\nalpha\nmike\n');
});

test('a transition fires only for a change that will happen: not when its prior_to node is noop or its requisite failed', async () => {
  const start = (root: string) => `touch ${root}/running; echo started >> ${root}/svc.log`;
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - exec: "<%= it.vars.prep %>"\n    id: prep\n  - exec: ${start(R)}\n    id: svc\n    unless: test -f ${R}/running\n` +
      `  - transition: stop\n    resource: svc\n    attributes: { argv: [/bin/sh, -c, 'rm ${R}/running; echo stopped >> ${R}/svc.log'], unless: test ! -f ${R}/running }\n` +
      `    prior_to: file:${R}/conf\n  - file: ${R}/mid\n    content: x\n    require: prep\n` +
      `  - file: ${R}/conf\n    content: "<%= it.vars.v %>"\n    require: file:${R}/mid\n    noop: <%= it.vars.noop %>\n`,
  });
  const log = () => readFileSync(join(s.root, 'svc.log'), 'utf8');
  const svc = `exec:${start(s.root)}`;
  const conf = `file:${s.root}/conf`;
  const vars = (prep: string, v: number, noop: boolean) => ['--var', `prep=${prep}`, '--var', `v=${v}`, '--var', `noop=${noop}`];
  await converge(s, 'apply', vars('true', 1, false), 0);
  assert.equal(log(), 'started\n');

  const noop = await converge(s, 'apply', vars('true', 2, true), 0);
  assert.deepEqual(lines(noop.nodes).slice(1), [
    `skipped transition:stop [prior_to will not run: ${conf}]`, `unchanged ${svc}`, `unchanged file:${s.root}/mid`, `would-change ${conf} [noop]`,
  ]);
  const plan = await converge(s, 'plan', vars('true', 2, true), 0);
  assert.equal(lines(plan.nodes)[1], `skipped transition:stop [prior_to will not run: ${conf}]`);

  // prep fails before the transition's turn; conf depends on it through mid, which has not run yet.
  const failed = await converge(s, 'apply', vars('false', 2, false), 1);
  assert.deepEqual(lines(failed.nodes), [
    'failed exec:false', `skipped transition:stop [prior_to will not run: ${conf}]`, `unchanged ${svc}`,
    `skipped file:${s.root}/mid [dependency failed: exec:false]`, `skipped ${conf} [dependency failed: file:${s.root}/mid]`,
  ]);
  assert.equal(log(), 'started\n');

  const runs = await converge(s, 'apply', vars('true', 2, false), 0);
  assert.deepEqual(lines(runs.nodes).slice(1, 4), [`changed ${svc} [transition]`, 'changed transition:stop', `changed ${svc}`]);
  assert.equal(log(), 'started\nstopped\nstarted\n');
});

test('onchanges runs only when a watched node changed; otherwise skipped (no changes), not a failure', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - file: ${R}/conf\n    content: "<%= it.vars.v %>"\n  - exec: echo changed >> ${R}/log\n    onchanges: file:${R}/conf\n`,
  });
  await converge(s, 'apply', ['--var', 'v=1'], 0);
  const r = await converge(s, 'apply', ['--var', 'v=1'], 0);
  assert.deepEqual(lines(r.nodes), [`unchanged file:${s.root}/conf`, `skipped exec:echo changed >> ${s.root}/log [no changes]`]);
  assert.equal(r.target.status, 'ok');
  await converge(s, 'apply', ['--var', 'v=2'], 0);
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 'changed\nchanged\n');
});

test('onfail runs only when a watched node failed', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - exec: "<%= it.vars.cmd %>"\n    id: job\n  - exec: echo cleanup >> ${R}/log\n    onfail: job\n`,
  });
  const ok = await converge(s, 'apply', ['--var', 'cmd=true'], 0);
  assert.deepEqual(lines(ok.nodes).slice(1), [`skipped exec:echo cleanup >> ${s.root}/log [onfail: nothing failed]`]);
  const bad = await converge(s, 'apply', ['--var', 'cmd=false'], 1);
  assert.deepEqual(bad.nodes.map((n) => n.status), ['failed', 'changed']);
  assert.equal(readFileSync(join(s.root, 'log'), 'utf8'), 'cleanup\n');
});

test('stages: a fresh host passes through every stage in order; a converged host shows no change', async () => {
  const s = scratchSite('{ conf: { v: 1 } }, snap, { conf: { v: 2 } }', {
    'states/s.yaml': `conf:\n  params: { v: ~ }\n  parts:\n    - file: ${R}/conf\n      content: "v<%= it.params.v %>"\nsnap:\n  - exec: cat ${R}/conf >> ${R}/seen\n    creates: ${R}/seen\n`,
  });
  const first = await converge(s, 'apply', [], 0);
  assert.deepEqual(lines(first.nodes), [`changed file:${s.root}/conf`, `changed exec:cat ${s.root}/conf >> ${s.root}/seen`, `changed file:${s.root}/conf`]);
  assert.equal(readFileSync(join(s.root, 'seen'), 'utf8'), 'v1');
  assert.equal(readFileSync(join(s.root, 'conf'), 'utf8'), 'v2');
  const second = await converge(s, 'apply', [], 0);
  assert.deepEqual(lines(second.nodes), [
    `skipped file:${s.root}/conf [end state in sync (stage 1 of 2)]`, `unchanged exec:cat ${s.root}/conf >> ${s.root}/seen`, `unchanged file:${s.root}/conf`,
  ]);
  assert.deepEqual(second.target.counts, { changed: 0, unchanged: 2, failed: 0, skipped: 1 });
});

test('noop: planned, never applied, triggers nothing', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - file: ${R}/f\n    content: x\n    noop: true\n    notify: h\nh:\n  lazy: true\n  parts:\n    - exec: echo h >> ${R}/log\n`,
  });
  const r = await converge(s, 'apply', [], 0);
  assert.deepEqual(lines(r.nodes), [`would-change file:${s.root}/f [noop]`]);
  assert.ok(!existsSync(join(s.root, 'f')));
  assert.ok(!existsSync(join(s.root, 'log')));
});

test('plan changes nothing, shows diffs, and is honest about what depends on earlier changes', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - directory: ${R}/new\n  - file: ${R}/new/f\n    content: "a\\nb\\n"\n  - file: ${R}/old\n    content: "one\\ntwo\\n"\n  - exec: touch ${R}/new/made\n    creates: ${R}/new/made\n` +
      `  - exec: echo guarded\n    unless: test -f ${R}/old\n    require: file:${R}/old\n`,
  });
  writeFileSync(join(s.root, 'old'), 'one\n2\n');
  const r = await converge(s, 'plan', ['--diff'], 0);
  assert.deepEqual(lines(r.nodes), [
    `would-change directory:${s.root}/new`,
    `would-change file:${s.root}/new/f [after directory:${s.root}/new]`,
    `would-change file:${s.root}/old`,
    `would-change exec:touch ${s.root}/new/made [after directory:${s.root}/new]`,
    `unknown exec:echo guarded [after file:${s.root}/old]`,
  ]);
  assert.match(r.nodes[2]!.diff!, /-2\n\+two/);
  assert.ok(!existsSync(join(s.root, 'new')));
  assert.equal(readFileSync(join(s.root, 'old'), 'utf8'), 'one\n2\n');
  assert.equal((await runCli(['plan', '--site', s.site, '--detailed-exitcode'])).status, 4);
  await converge(s, 'apply', [], 0);
  assert.equal((await runCli(['plan', '--site', s.site, '--detailed-exitcode'])).status, 0);
});

test('file: backup keeps the old content; source copies a site file; absent removes', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - file: ${R}/f\n    content: "<%= it.vars.v %>"\n    backup: true\n  - file: ${R}/copy\n    source: files/data.bin\n  - file: ${R}/gone\n    ensure: absent\n`,
    'files/data.bin': 'binary\u0000data',
  });
  writeFileSync(join(s.root, 'gone'), 'x');
  await converge(s, 'apply', ['--var', 'v=old'], 0);
  const r = await converge(s, 'apply', ['--var', 'v=new'], 0);
  assert.deepEqual(r.nodes.map((n) => n.status), ['changed', 'unchanged', 'unchanged']);
  assert.equal(readFileSync(join(s.root, 'f.cairn-bak'), 'utf8'), 'old');
  assert.equal(readFileSync(join(s.root, 'copy'), 'utf8'), 'binary\u0000data');
  assert.ok(!existsSync(join(s.root, 'gone')));
});

test('symlink: a file in the way fails unless force; line: match replaces the first matching line', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - symlink: ${R}/l\n    target: /etc/hostname\n    force: <%= it.vars.force %>\n  - line: ${R}/conf\n    match: "^port ="\n    text: "port = 8080"\n`,
  });
  writeFileSync(join(s.root, 'l'), 'in the way');
  writeFileSync(join(s.root, 'conf'), 'a = 1\nport = 80\nport = 81\n');
  const r = await converge(s, 'apply', ['--var', 'force=false'], 1);
  assert.match(r.nodes[0]!.error!, /a file is in the way .*set force: true/);
  assert.equal(readFileSync(join(s.root, 'conf'), 'utf8'), 'a = 1\nport = 8080\nport = 81\n');
  await converge(s, 'apply', ['--var', 'force=true'], 0);
  const again = await converge(s, 'apply', ['--var', 'force=true'], 0);
  assert.deepEqual(again.target.counts, { changed: 0, unchanged: 2, failed: 0, skipped: 0 });
});

test('symlink: a link to a path that does not exist (yet) is made and then kept', async () => {
  const s = scratchSite('s', { 'states/s.yaml': `s:\n  - symlink: ${R}/l\n    target: ${R}/later\n` });
  const r = await converge(s, 'apply', [], 0);
  assert.deepEqual(r.nodes.map((n) => n.status), ['changed']);
  assert.equal(readlinkSync(join(s.root, 'l')), join(s.root, 'later'));
  assert.deepEqual((await converge(s, 'apply', [], 0)).target.counts, { changed: 0, unchanged: 1, failed: 0, skipped: 0 });
});

test('exec: argv, env, cwd, unless/onlyif and timeout', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - exec: write\n    argv: [/bin/sh, -c, 'echo "$GREETING" > out']\n    cwd: ${R}\n    env: { GREETING: hi }\n    unless: test -f ${R}/out\n  - exec: echo never\n    onlyif: "false"\n  - exec: sleep 5\n    timeout: 0.2\n`,
  });
  const r = await converge(s, 'apply', [], 1);
  assert.deepEqual(r.nodes.map((n) => n.status), ['changed', 'unchanged', 'failed']);
  assert.equal(readFileSync(join(s.root, 'out'), 'utf8'), 'hi\n');
  assert.match(r.nodes[2]!.error!, /timed out after 0.2 s/);
});

test('the JSON report has the documented shape and counts add up', async () => {
  const s = scratchSite('s', { 'states/s.yaml': `s:\n  - file: ${R}/f\n    content: x\n` });
  const { report, target } = await converge(s, 'apply', [], 0);
  assert.equal(report.version, 1);
  assert.ok('started' in report && 'finished' in report);
  const c = target.counts;
  assert.equal(c.changed + c.unchanged + c.failed + c.skipped, target.nodes.length);
  for (const key of ['ref', 'state', 'invocation', 'status', 'action', 'ms']) assert.ok(key in target.nodes[0]!, key);
});

test('plain output: a line per node and a summary line', async () => {
  const s = scratchSite('s', { 'states/s.yaml': `s:\n  - file: ${R}/f\n    content: x\n` });
  const r = await runCli(['apply', '--site', s.site]);
  assert.equal(r.status, 0);
  assert.match(r.stdout, new RegExp(`^changed +file:${s.root}/f \\(create\\)\\nt1: 1 changed, 0 unchanged, 0 failed, 0 skipped in \\d+\\.\\d\\d s( \\(\\d+ round trips\\))?\\n$`));
});

test('the bundled example: plan shows changes, apply makes them, a second apply changes nothing', async () => {
  const root = join(mkdtempSync(join(tmpdir(), 'cairn-example-')), 'root');
  const args = ['--site', 'examples/site', '-t', 'web1', '--var', `root=${root}`, '--json'];
  const plan = JSON.parse((await runCli(['plan', ...args])).stdout) as { targets: { counts: Record<string, number> }[] };
  // 16 nodes, and the reload handler at the end of each of the 4 invocations that notify it.
  assert.equal(plan.targets[0]!.counts.changed, 20);
  assert.ok(!existsSync(root));
  const first = await runCli(['apply', ...args]);
  assert.equal(first.status, 0, first.stderr);
  assert.match(readFileSync(join(root, 'etc/webserver/sites/c.example.conf'), 'utf8'), /tls on;/);
  const second = JSON.parse((await runCli(['apply', ...args])).stdout) as { targets: { counts: Record<string, number> }[] };
  assert.deepEqual(second.targets[0]!.counts, { changed: 0, unchanged: 16, failed: 0, skipped: 0 });
});

test('a target with executor: agent and no master given is an input error: exit 2, no target touched', async () => {
  const s = scratchSite('s', { 'states/s.yaml': `s:\n  - file: ${R}/f\n    content: x\n` }, 'groups:\n  all: { match: "*", run: [] }\n');
  const site = join(s.site, 'cairn.yaml');
  writeFileSync(site, readFileSync(site, 'utf8').replace('targets:\n', 'targets:\n  far:\n    executor: agent\n    run: [s]\n'));
  const saved = process.env.CAIRN_MASTER;
  delete process.env.CAIRN_MASTER;
  try {
    const r = await runCli(['apply', '--site', s.site, '--json']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /target far has executor: agent, but no master is given/);
    assert.match(r.stderr, /--master/);
    assert.ok(!existsSync(join(s.root, 'f')));
  } finally {
    if (saved !== undefined) process.env.CAIRN_MASTER = saved;
  }
});

test('a file part never removes a directory in its place', async () => {
  const s = scratchSite('s', { 'states/s.yaml': `s:\n  - file: ${R}/d\n    ensure: absent\n` });
  mkdirSync(join(s.root, 'd'));
  writeFileSync(join(s.root, 'd/keep'), 'precious');
  const r = await converge(s, 'apply', [], 1);
  assert.match(r.nodes[0]!.error!, /is a directory, not a file; not removing it/);
  assert.equal(readFileSync(join(s.root, 'd/keep'), 'utf8'), 'precious');
});

test('exec user: the command runs with that user\'s uid and primary group', { skip: process.getuid?.() !== 0 ? 'LOUD SKIP: needs root to switch users' : false }, async () => {
  const s = scratchSite('s', { 'states/s.yaml': 's:\n  - exec: "id -u; id -g; exit 3"\n    user: nobody\n' });
  const r = await converge(s, 'apply', [], 1);
  const ids = spawnSync('sh', ['-c', 'id -u nobody; id -g nobody'], { encoding: 'utf8' }).stdout.trim().split('\n');
  assert.match(r.nodes[0]!.error!, new RegExp(`exited with 3:\\n${ids[0]}\\n${ids[1]}$`));
});

test('line: ensure absent removes matching lines; create: false fails on a missing file', async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - line: ${R}/hosts\n    text: "10.0.0.1 old"\n    ensure: absent\n  - line: ${R}/missing\n    text: x\n    create: false\n`,
  });
  writeFileSync(join(s.root, 'hosts'), 'a\n10.0.0.1 old\nb\n');
  const r = await converge(s, 'apply', [], 1);
  assert.deepEqual(r.nodes.map((n) => `${n.status}/${n.action}`), ['changed/destroy', 'failed/create']);
  assert.equal(readFileSync(join(s.root, 'hosts'), 'utf8'), 'a\nb\n');
  assert.match(r.nodes[1]!.error!, /does not exist \(create: false\)/);
});

test('lines of one file next to one another are gathered: each reports what it would applied alone in turn, and the file is the same', async () => {
  // Each edit sees the ones before it: a match that takes the line an earlier part wrote, one
  // that removes two earlier lines, a part whose requisite failed, one refused (create: false).
  const edits = [
    `  - line: ${R}/conf\n    text: first\n    create: false\n`,
    `  - line: ${R}/conf\n    match: "^option"\n    text: option=1\n`,
    `  - line: ${R}/conf\n    text: option=2\n`,
    `  - line: ${R}/conf\n    text: "x = 1"\n    require: exec:false\n`,
    `  - line: ${R}/conf\n    match: "^opt"\n    text: opt\n    ensure: absent\n`,
    `  - line: ${R}/conf\n    text: "y = 2"\n`,
    `  - line: ${R}/conf\n    match: "^y"\n    text: "y = 3"\n`,
  ];
  // Apart: a folder part between each two, so each line is applied alone, one after another.
  const together = scratchSite('s', { 'states/s.yaml': `s:\n  - exec: "false"\n${edits.join('')}` });
  const apart = scratchSite('s', { 'states/s.yaml': `s:\n  - exec: "false"\n${edits.map((e, i) => `${e}  - directory: ${R}/d${i}\n`).join('')}` });
  const lineResults = (r: Awaited<ReturnType<typeof converge>>, root: string) => r.nodes.filter((n) => n.ref.startsWith('line:'))
    .map((n) => `${n.status}/${n.action} ${n.ref.split(root).join('ROOT')}${n.reason ? ` [${n.reason}]` : ''}${n.error ? ` (${n.error.split(root).join('ROOT')})` : ''}`);
  for (const step of [1, 2]) {
    const t = await converge(together, 'apply', [], 1);
    const a = await converge(apart, 'apply', [], 1);
    assert.deepEqual(lineResults(t, together.root), lineResults(a, apart.root), `run ${step}`);
    assert.equal(readFileSync(join(together.root, 'conf'), 'utf8'), readFileSync(join(apart.root, 'conf'), 'utf8'), `run ${step}`);
  }
  // The third run, worked out by hand: run 1 left "y = 3", run 2 added "first" and "y = 2" after it.
  const last = await converge(together, 'apply', [], 1);
  assert.deepEqual(lineResults(last, together.root), [
    'unchanged/none line:ROOT/conf#first', 'changed/create line:ROOT/conf#^option', 'changed/create line:ROOT/conf#option=2',
    'skipped/none line:ROOT/conf#x = 1 [dependency failed: exec:false]', 'changed/destroy line:ROOT/conf#^opt',
    'unchanged/none line:ROOT/conf#y = 2', 'unchanged/none line:ROOT/conf#^y',
  ]);
  assert.equal(readFileSync(join(together.root, 'conf'), 'utf8'), 'y = 3\nfirst\ny = 2\n');
});

test('commands next to one another (sent together over SSH): each decides on what the ones before it did and reports what it would run alone in turn', async () => {
  // Each guard is asked after the commands before it ran: a creates that an earlier command made,
  // an unless and an onlyif that test earlier effects; a failure, a timeout, a failed requisite,
  // cwd and env, and a command with no guard, which runs every time.
  const commands = [
    `  - exec: touch ${R}/a\n    creates: ${R}/a\n`,
    `  - exec: touch ${R}/never-b\n    creates: ${R}/a\n`,
    `  - exec: touch ${R}/c\n    unless: test -f ${R}/never-b\n`,
    `  - exec: touch ${R}/never-d\n    onlyif: test -f ${R}/never-b\n`,
    `  - exec: sh -c 'echo oops; exit 3'\n`,
    `  - exec: touch ${R}/never-e\n    require: exec:false\n`,
    `  - exec: greet\n    argv: [/bin/sh, -c, 'echo "$G" >> g']\n    cwd: ${R}\n    env: { G: hi }\n    unless: grep -qx hi ${R}/g\n`,
    `  - exec: sleep 5\n    timeout: 0.5\n    creates: ${R}/c\n`,
    `  - exec: sh -c 'echo run >> ${R}/log'\n`,
    `  - exec: touch ${R}/f\n    onlyif: test -f ${R}/c\n    creates: ${R}/f\n`,
  ];
  // Apart: a folder part between each two, so each command runs alone, one after another.
  const together = scratchSite('s', { 'states/s.yaml': `s:\n  - exec: "false"\n${commands.join('')}` });
  const apart = scratchSite('s', { 'states/s.yaml': `s:\n  - exec: "false"\n${commands.map((c, i) => `${c}  - directory: ${R}/d${i}\n`).join('')}` });
  const results = (r: Awaited<ReturnType<typeof converge>>, root: string) => r.nodes.filter((n) => n.ref.startsWith('exec:'))
    .map((n) => `${n.status}/${n.action} ${n.ref.split(root).join('ROOT')}${n.reason ? ` [${n.reason}]` : ''}${n.error ? ` (${n.error.split(root).join('ROOT')})` : ''}`);
  const files = (root: string) => ['a', 'never-b', 'c', 'never-d', 'never-e', 'g', 'log', 'f'].map((f) => (existsSync(join(root, f)) ? `${f}: ${readFileSync(join(root, f), 'utf8')}` : `${f} absent`));
  const runs: string[][] = [];
  for (const step of [1, 2]) {
    const t = await converge(together, 'apply', [], 1);
    const a = await converge(apart, 'apply', [], 1);
    assert.deepEqual(results(t, together.root), results(a, apart.root), `run ${step}`);
    assert.deepEqual(files(together.root), files(apart.root), `run ${step}`);
    runs.push(results(t, together.root));
  }
  // The first run, worked out by hand.
  assert.deepEqual(runs[0], [
    'failed/run exec:false (exited with 1)',
    'changed/run exec:touch ROOT/a', 'unchanged/none exec:touch ROOT/never-b', 'changed/run exec:touch ROOT/c',
    'unchanged/none exec:touch ROOT/never-d', 'failed/run exec:sh -c \'echo oops; exit 3\' (exited with 3:\noops)',
    'skipped/none exec:touch ROOT/never-e [dependency failed: exec:false]', 'changed/run exec:greet',
    'unchanged/none exec:sleep 5', 'changed/run exec:sh -c \'echo run >> ROOT/log\'', 'changed/run exec:touch ROOT/f',
  ]);
  // The second: only what no guard stops runs again (never-b is never made: c's unless never says no).
  assert.deepEqual(runs[1]!.filter((r) => !r.startsWith('unchanged')), [
    'failed/run exec:false (exited with 1)', 'changed/run exec:touch ROOT/c', 'failed/run exec:sh -c \'echo oops; exit 3\' (exited with 3:\noops)',
    'skipped/none exec:touch ROOT/never-e [dependency failed: exec:false]', 'changed/run exec:sh -c \'echo run >> ROOT/log\'',
  ]);
  assert.deepEqual(files(together.root), ['a: ', 'never-b absent', 'c: ', 'never-d absent', 'never-e absent', 'g: hi\n', 'log: run\nrun\n', 'f: ']);
});

test('a command past its timeout fails as alone, and the commands after it still run', async () => {
  const s = scratchSite('s', { 'states/s.yaml': `s:\n  - exec: sleep 5\n    timeout: 0.3\n  - exec: touch ${R}/after\n    creates: ${R}/after\n` });
  const r = await converge(s, 'apply', [], 1);
  assert.deepEqual(r.nodes.map((n) => `${n.status} ${n.error ?? ''}`), ['failed timed out after 0.3 s', 'changed ']);
  assert.ok(existsSync(join(s.root, 'after')));
});

test('directory: parents: false needs the parent; owner, group and mode are converged', { skip: process.getuid?.() !== 0 ? 'LOUD SKIP: needs root to chown' : false }, async () => {
  const s = scratchSite('s', {
    'states/s.yaml': `s:\n  - directory: ${R}/a/b\n    parents: false\n  - directory: ${R}/owned\n    owner: nobody\n    group: nogroup\n    mode: "0750"\n`,
  });
  const r = await converge(s, 'apply', [], 1);
  assert.match(r.nodes[0]!.error!, /the parent of .*\/a\/b does not exist \(parents: false\)/);
  const st = statSync(join(s.root, 'owned'));
  const ids = spawnSync('sh', ['-c', 'id -u nobody; getent group nogroup | cut -d: -f3'], { encoding: 'utf8' }).stdout.trim().split('\n').map(Number);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [ids[0], ids[1], 0o750]);
  const again = await converge(s, 'apply', [], 1);
  assert.equal(again.nodes[1]!.status, 'unchanged');
});
