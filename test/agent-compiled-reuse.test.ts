/**
 * An agent keeps the compiled run it decoded last and runs it again when the master sends the
 * same text (src/daemon/agent-link.ts): sound only while a run leaves its compiled run as it
 * found it. Held here with the standard workload (bench/site: files, directories, templates,
 * links, handlers) applied, then converged again, by the real engine on real files.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { buildCatalog } from '../src/catalog/catalog.ts';
import { compile } from '../src/catalog/compile.ts';
import { runTarget } from '../src/engine/run-target.ts';
import { LocalExecutor } from '../src/executors/local.ts';
import { localFacts } from '../src/executors/local-facts.ts';
import { buildGraph } from '../src/graph/build.ts';
import { decodeCompiled, encodeCompiled } from '../src/graph/codec.ts';
import { Diagnostics } from '../src/lib/errors.ts';
import { loadSite } from '../src/site/load.ts';

const work = mkdtempSync(join(tmpdir(), 'cairn-reuse-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('a decoded compiled run is the same after an apply and a no-op run of it (an agent may run it again)', async () => {
  const site = join(work, 'site');
  cpSync(resolve(import.meta.dirname, '../bench/site'), site, { recursive: true });
  writeFileSync(join(site, 'cairn.yaml'), `targets:\n  local:\n    executor: local\n    state_dir: ${join(work, 'state')}\n    vars: { root: ${join(work, 'root')} }\n    run: [workload]\nvars:\n  app_version: 1\n`);
  const d = new Diagnostics();
  const catalog = buildCatalog(await loadSite(site, d), d);
  d.throwIfAny();
  const facts = localFacts();
  const run = compile(catalog, catalog.targets.get('local')!, { facts });
  const text = encodeCompiled({ run, graph: buildGraph(run) }).join('');
  const decoded = decodeCompiled(text);
  const counts: { changed: number }[] = [];
  for (const mode of ['apply', 'apply', 'plan'] as const) {
    const exec = new LocalExecutor();
    try {
      const report = await runTarget(decoded, exec, { mode, facts });
      assert.equal(report.status, 'ok', report.error);
      counts.push(report.counts);
    } finally {
      await exec.close();
    }
  }
  // The first apply changed the workload into place; the runs after it found nothing to do.
  assert.ok(counts[0]!.changed > 700, JSON.stringify(counts[0]));
  assert.equal(counts[1]!.changed, 0);
  assert.equal(counts[2]!.changed, 0);
  const fresh = decodeCompiled(text);
  assert.deepEqual(decoded, fresh);
  assert.equal(encodeCompiled(decoded).join(''), encodeCompiled(fresh).join(''));
});
