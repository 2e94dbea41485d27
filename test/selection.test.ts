/**
 * Selecting targets with exclusions (`-t '!web1'`, as Ansible's `--limit`), through the CLI, and
 * the words and numbers the text output shares with the JSON (DESIGN §12).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeSite, runCli, tempDir } from './helpers/cli.ts';

const fleet = () => {
  // Each its own state folder: local targets sharing one would wait on each other's run lock.
  const state = tempDir('cairn-fleet-');
  return makeSite({
  'cairn.yaml': [
    'targets:',
    ...['web1', 'web2', 'web3', 'db1'].map((n) => `  ${n}: { executor: local, state_dir: ${state}/${n} }`),
    'groups:',
    '  web: { match: "web*" }',
    '',
  ].join('\n'),
  });
};

async function shown(site: string, selectors: string[]): Promise<string[]> {
  const r = await runCli(['show', '--site', site, '--json', ...selectors.flatMap((s) => ['-t', s])]);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { run: { target: { name: string } } } | { run: { target: { name: string } } }[];
  return (Array.isArray(out) ? out : [out]).map((o) => o.run.target.name);
}

test('exclusions remove from the union of the positive selectors, in any order', async () => {
  const site = fleet();
  assert.deepEqual(await shown(site, ['web*', '!web3']), ['web1', 'web2']);
  assert.deepEqual(await shown(site, ['!web3', 'web*']), ['web1', 'web2']);
  assert.deepEqual(await shown(site, ['web', 'db1', '!web2']), ['web1', 'web3', 'db1']);
  assert.deepEqual(await shown(site, ['!web', '*']), ['db1']);
  // A target named by two positive selectors is one target, not an error.
  assert.deepEqual(await shown(site, ['web', 'web1']), ['web1', 'web2', 'web3']);
});

test('exclusions alone mean every target except those', async () => {
  const site = fleet();
  assert.deepEqual(await shown(site, ['!web1']), ['web2', 'web3', 'db1']);
  assert.deepEqual(await shown(site, ['!web1', '!db*']), ['web2', 'web3']);
});

test('exclusions work for plan, facts and run', async () => {
  const site = fleet();
  const plan = await runCli(['plan', '--site', site, '--json', '-t', 'web*', '-t', '!web3']);
  assert.equal(plan.status, 0, plan.stderr);
  assert.deepEqual((JSON.parse(plan.stdout) as { targets: { name: string }[] }).targets.map((t) => t.name), ['web1', 'web2']);
  const facts = await runCli(['facts', '--site', site, '--json', '-t', '!web1']);
  assert.equal(facts.status, 0, facts.stderr);
  assert.deepEqual((JSON.parse(facts.stdout) as { targets: { name: string }[] }).targets.map((t) => t.name), ['web2', 'web3', 'db1']);
  const run = await runCli(['run', '--site', site, '--json', '-t', 'web', '-t', '!web2', '--', 'true']);
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual((JSON.parse(run.stdout) as { targets: { name: string }[] }).targets.map((t) => t.name), ['web1', 'web3']);
});

test('an exclusion that names nothing is refused with a did-you-mean, like a positive selector', async () => {
  const site = fleet();
  const positive = await runCli(['show', '--site', site, '-t', 'wbe1']);
  assert.equal(positive.status, 2);
  assert.match(positive.stderr, /no target, group or glob matches 'wbe1'.*did you mean 'web1'/is);
  for (const command of [['show'], ['plan'], ['facts'], ['run', '--', 'true']]) {
    const r = await runCli([command[0]!, '--site', site, '-t', 'web*', '-t', '!wbe1', ...command.slice(1)]);
    assert.equal(r.status, 2, `${command[0]}: ${r.stderr}`);
    assert.match(r.stderr, /no target, group or glob matches 'wbe1' \(in the exclusion '!wbe1'\).*did you mean 'web1'/is);
    assert.equal(r.stdout, '');
  }
});

test('a selection whose exclusions leave nothing is refused', async () => {
  const r = await runCli(['show', '--site', fleet(), '-t', 'web1', '-t', '!web']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /leaves no target/);
});

test("the text says `unchanged` for a node in sync, the JSON report's word", async () => {
  const root = tempDir('cairn-unchanged-');
  const site = makeSite({
    'cairn.yaml': `targets:\n  t1: { executor: local, state_dir: ${root}/.state, run: [s] }\n`,
    'states/s.yaml': `s:\n  - file: ${root}/f\n    content: x\n`,
  });
  const first = await runCli(['apply', '--site', site]);
  assert.equal(first.status, 0, first.stderr);
  const again = await runCli(['plan', '--site', site]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, new RegExp(`^unchanged +file:${root}/f$`, 'm'));
  assert.doesNotMatch(again.stdout, /^ok /m);
  const json = await runCli(['plan', '--site', site, '--json']);
  assert.equal((JSON.parse(json.stdout) as { targets: { nodes: { status: string }[] }[] }).targets[0]!.nodes[0]!.status, 'unchanged');
});

test('show numbers invocations as show --json does', async () => {
  const site = makeSite({
    'cairn.yaml': 'targets:\n  t1: { executor: local, run: [a, b] }\n',
    'states/s.yaml': 'a:\n  - directory: /tmp/cairn-never-a\nb:\n  - directory: /tmp/cairn-never-b\n',
  });
  const text = await runCli(['show', '--site', site]);
  assert.equal(text.status, 0, text.stderr);
  const json = JSON.parse((await runCli(['show', '--site', site, '--json'])).stdout) as {
    run: { invocations: { index: number; state: string }[] }; graph: { nodes: { ref: string; invocation: number }[] };
  };
  for (const inv of json.run.invocations) assert.match(text.stdout, new RegExp(`^ +${inv.index}\\. ${inv.state} `, 'm'));
  for (const node of json.graph.nodes) {
    const state = json.run.invocations[node.invocation]!.state;
    assert.match(text.stdout, new RegExp(`${node.ref} +${state}#${node.invocation} `));
  }
  assert.match(text.stdout, /^ +0\. a /m);
});

for (const bad of ['0', '-3', 'abc', '2.5', '']) {
  test(`--forks ${JSON.stringify(bad)} is refused, naming the option`, async () => {
    const site = fleet();
    for (const command of ['plan', 'apply', 'facts', 'run']) {
      const r = await runCli([command, '--site', site, `--forks=${bad}`, ...(command === 'run' ? ['--', 'true'] : [])]);
      assert.equal(r.status, 2, `${command}: ${r.stderr}`);
      assert.match(r.stderr, /--forks/);
      assert.equal(r.stdout, '');
    }
  });
}
