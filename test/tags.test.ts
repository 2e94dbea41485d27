/** `--tags` / `--skip-tags` (DESIGN §4a), through the CLI on a site that converges a temp folder. */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from './helpers/cli.ts';
import { converge, lines, scratchSite, type Scratch } from './helpers/converge.ts';

const R = '<%= it.vars.root %>';

function site(): Scratch {
  return scratchSite('web, db', {
    'states/s.yaml': [
      'common:',
      `  - directory: ${R}/etc`,
      'web:',
      '  tags: [web]',
      '  include: [common]',
      '  parts:',
      `    - file: ${R}/etc/web.conf`,
      '      content: w',
      `      require: directory:${R}/etc`,
      '      notify: restart',
      `    - file: ${R}/extra`,
      '      content: x',
      '      tags: [extra]',
      'db:',
      `  - file: ${R}/prep`,
      '    content: p',
      '    tags: [prep]',
      `  - file: ${R}/db.conf`,
      '    content: d',
      '    tags: [db]',
      `    require: file:${R}/prep`,
      'restart:',
      '  lazy: true',
      '  parts:',
      `    - file: ${R}/restarted`,
      '      content: r',
      '',
    ].join('\n'),
  });
}

const short = (s: Scratch, out: string[]) => out.map((l) => l.replaceAll(s.root, ''));

test('--tags runs the nodes carrying a tag (its state\'s, its including state\'s) and what they require; the rest are skipped (tags)', async () => {
  const s = site();
  const web = await converge(s, 'apply', ['--tags', 'web'], 0);
  assert.deepEqual(short(s, lines(web.nodes)), [
    'changed directory:/etc',
    'changed file:/etc/web.conf',
    'changed file:/extra',
    'changed file:/restarted [notified by file:/etc/web.conf]',
    'skipped file:/prep [tags]',
    'skipped file:/db.conf [tags]',
  ]);
  assert.deepEqual(web.target.counts, { changed: 4, unchanged: 0, failed: 0, skipped: 2 });
  assert.ok(!existsSync(join(s.root, 'db.conf')));

  const db = await converge(s, 'apply', ['--tags', 'db'], 0);
  assert.deepEqual(short(s, lines(db.nodes)), [
    'skipped directory:/etc [tags]',
    'skipped file:/etc/web.conf [tags]',
    'skipped file:/extra [tags]',
    'changed file:/prep',
    'changed file:/db.conf',
  ]);
});

test('--skip-tags leaves out the nodes carrying a tag; what requires them still runs, and handlers run when a node that ran notifies them', async () => {
  const s = site();
  const r = await converge(s, 'plan', ['--skip-tags', 'prep,extra'], 0);
  assert.deepEqual(short(s, lines(r.nodes)), [
    'would-change directory:/etc',
    'would-change file:/etc/web.conf [after directory:/etc]',
    'skipped file:/extra [tags]',
    'would-change file:/restarted [notified by file:/etc/web.conf]',
    'skipped file:/prep [tags]',
    'would-change file:/db.conf',
  ]);
  const both = await converge(s, 'apply', ['--tags', 'web', '--skip-tags', 'web'], 0);
  assert.ok(both.nodes.filter((n) => n.ref !== `file:${s.root}/restarted`).every((n) => n.reason === 'tags'), 'skipping wins');
  assert.ok(!both.nodes.some((n) => n.ref === `file:${s.root}/restarted`), 'no node ran to notify the handler');
});

test('a tag no selected part carries, or that is no tag name, is an error (exit 2) and changes nothing', async () => {
  const s = site();
  const typo = await runCli(['apply', '--site', s.site, '--tags', 'wbe']);
  assert.equal(typo.status, 2);
  assert.match(typo.stderr, /--tags: no part of the selected targets carries tag 'wbe' \(did you mean 'web'\?\)/);
  assert.match(typo.stderr, /tags in use: db, extra, prep, web/);
  assert.ok(!existsSync(join(s.root, 'etc')));
  for (const bad of ['a,,b', 'a b']) {
    const r = await runCli(['plan', '--site', s.site, '--skip-tags', bad]);
    assert.equal(r.status, 2, bad);
    assert.match(r.stderr, /--skip-tags/);
  }
  const badState = scratchSite('x', { 'states/x.yaml': 'x:\n  tags: [ok, "not ok"]\n  parts: []\n' });
  const r = await runCli(['plan', '--site', badState.site]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /state 'x': tags lists tag names.*--> states\/x\.yaml:2:15/s);
  const badPart = scratchSite('x', { 'states/x.yaml': `x:\n  - file: ${R}/f\n    tags: [a/b]\n` });
  const p = await runCli(['plan', '--site', badPart.site]);
  assert.equal(p.status, 2);
  assert.match(p.stderr, /a tag is letters, digits.*--> states\/x\.yaml:3:\d+/s);
});

test('show --tags marks the nodes a run would leave out', async () => {
  const s = site();
  const r = await runCli(['show', '--site', s.site, '--tags', 'db']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /run order \(5 nodes, 3 left out by tags\)/);
  assert.match(r.stdout, /directory:\S+\/etc \(left out by tags, tags web\)/);
  assert.match(r.stdout, /file:\S+\/prep \(tags prep\)/);
  const json = await runCli(['show', '--json', '--site', s.site, '--skip-tags', 'extra']);
  assert.deepEqual((JSON.parse(json.stdout) as { left_out_by_tags: string[] }).left_out_by_tags, [`file:${s.root}/extra`]);
});
