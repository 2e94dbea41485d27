/**
 * What `cairn show` compiles against (DESIGN §12): without `--facts`, a local target's facts are
 * this machine's and any other's are assumed (said on stderr, one line); `--facts FILE` takes one
 * target's facts or exactly what `cairn facts --json` prints, and refuses anything else.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { makeSite, runCli } from './helpers/cli.ts';

const ALPINE = { kernel: 'linux', os_family: 'alpine', distribution: 'alpine', release: '3.20.1', architecture: 'x86_64', init_system: 'openrc', package_manager: 'apk', hostname: 'web1', addresses: { ipv4: ['192.0.2.10'], ipv6: [] }, cpus: 2, memory_mb: 2048 };

function site() {
  return makeSite({
    'cairn.yaml': 'targets:\n  web1: { executor: ssh, host: 192.0.2.10, run: [s] }\n  local: { executor: local, run: [s] }\n',
    'states/s.yaml': 's:\n  - file: /tmp/<%= it.facts.hostname %>-<%= it.facts.os_family %>-<%= it.os.package_manager %>\n    content: <%= it.facts.addresses.ipv4.join(",") || "none" %>\n',
  });
}

interface Shown { run: { target: { name: string }; invocations: { parts: { ref: string; attributes?: Record<string, unknown> }[] }[] } }
const refs = (stdout: string) => ([JSON.parse(stdout) as Shown | Shown[]].flat()).map((s) => s.run.invocations[0]!.parts[0]!.ref);

test('show without --facts: a remote target compiles with the assumed facts, said on stderr in one line', async () => {
  const s = site();
  const r = await runCli(['show', '--site', s, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const [web1, local] = refs(r.stdout);
  assert.equal(web1, 'file:/tmp/web1-debian-apt');
  assert.match(local!, /^file:\/tmp\/[^-]+-/, "a local target's facts are this machine's");
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^cairn: no facts for web1: compiled as a generic debian 12 host \(os_family debian, x86_64, systemd, apt, .*; give real ones with --facts FILE/);
  const text = await runCli(['show', '--site', s, '-t', 'web1']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /file:\/tmp\/web1-debian-apt/);
});

test("show --facts takes what `cairn facts --json` prints, each target its own", async () => {
  const s = site();
  const gathered = await runCli(['facts', '--site', s, '-t', 'local', '--json']);
  assert.equal(gathered.status, 0, gathered.stderr);
  const report = JSON.parse(gathered.stdout) as { version: number; targets: { name: string; facts: Record<string, unknown> }[] };
  report.targets.push({ name: 'web1', facts: ALPINE });
  writeFileSync(join(s, 'facts.json'), JSON.stringify(report, null, 2));
  const r = await runCli(['show', '--site', s, '--facts', join(s, 'facts.json'), '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '', 'nothing assumed');
  const [web1, local] = refs(r.stdout);
  assert.equal(web1, 'file:/tmp/web1-alpine-apk');
  const mine = report.targets[0]!.facts;
  assert.ok(local!.startsWith(`file:/tmp/${String(mine.hostname)}-${String(mine.os_family)}-`), local);
});

test('show --facts takes one set of facts (YAML) for every target', async () => {
  const s = site();
  writeFileSync(join(s, 'alpine.yaml'), Object.entries(ALPINE).map(([k, v]) => `${k}: ${JSON.stringify(v)}`).join('\n'));
  const r = await runCli(['show', '--site', s, '--facts', join(s, 'alpine.yaml'), '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(refs(r.stdout), ['file:/tmp/web1-alpine-apk', 'file:/tmp/web1-alpine-apk']);
});

const rejected: { name: string; content: string; at: string; message: RegExp }[] = [
  { name: 'an unknown key', content: '{"bogus":1}', at: '1:2', message: /unknown key 'bogus'[\s\S]*help: valid: kernel, kernel_release, os_family/ },
  { name: 'a fact of the wrong type', content: 'os_family: debian\ncpus: many\n', at: '2:7', message: /cpus: expected number/ },
  { name: 'an empty map', content: '{}\n', at: '1:1', message: /holds no facts/ },
  { name: 'a list', content: '- os_family: debian\n', at: '1:1', message: /expected one target's facts .* or what `cairn facts --json` prints/ },
  { name: "`cairn facts --json` with a bad fact", content: JSON.stringify({ version: 1, targets: [{ name: 'web1', facts: { os_family: 'debian', bogus: 1 } }] }, null, 2), at: '8:9', message: /targets\.0\.facts: unknown key 'bogus'/ },
  { name: "`cairn facts --json` with an unknown version", content: JSON.stringify({ version: 2, targets: [] }), at: '1:12', message: /version: expected 1/ },
  { name: "`cairn facts --json` without the target shown", content: JSON.stringify({ version: 1, targets: [{ name: 'local', facts: ALPINE }, { name: 'web1', error: 'connection refused' }] }), at: '1:1', message: /no facts for web1 \(unreachable when gathered: connection refused\)[\s\S]*help: it has facts for local/ },
  { name: 'not YAML', content: 'os_family: [debian\n', at: '2:1', message: /facts file: / },
];

for (const c of rejected) {
  test(`show --facts refuses ${c.name}: exit 2 naming the file and what is wrong`, async () => {
    const s = site();
    const file = join(s, 'facts.yaml');
    writeFileSync(file, c.content);
    const r = await runCli(['show', '--site', s, '-t', 'web1', '--facts', file]);
    assert.equal(r.status, 2, `stderr:\n${r.stderr}`);
    assert.ok(r.stderr.includes(`--> ${file}:${c.at}`), `expected ${file}:${c.at} in:\n${r.stderr}`);
    assert.match(r.stderr, c.message);
    assert.equal(r.stdout, '');
  });
}

test('plan --facts takes `cairn facts --json` too', async () => {
  const s = makeSite({ 'cairn.yaml': 'targets:\n  local: { executor: local, run: [s] }\n', 'states/s.yaml': 's:\n  - exec: "true"\n    unless: "<%= it.facts.os_family === \'alpine\' ? \'true\' : \'false\' %>"\n' });
  writeFileSync(join(s, 'facts.json'), JSON.stringify({ version: 1, targets: [{ name: 'local', facts: ALPINE }] }));
  const r = await runCli(['plan', '--site', s, '--facts', join(s, 'facts.json'), '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /"status": "unchanged"|"action": "none"/);
  writeFileSync(join(s, 'other.json'), JSON.stringify({ version: 1, targets: [{ name: 'web9', facts: ALPINE }] }));
  const missing = await runCli(['plan', '--site', s, '--facts', join(s, 'other.json')]);
  assert.equal(missing.status, 2, missing.stderr);
  assert.match(missing.stderr, /no facts for local/);
});
