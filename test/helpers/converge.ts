/** Runs `cairn plan|apply --json` on a site whose target converges a temp folder. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { NodeResult, TargetReport } from '../../src/engine/engine.ts';
import { makeSite, runCli, tempDir } from './cli.ts';

export interface Report {
  version: number;
  targets: TargetReport[];
}

export interface Scratch {
  site: string;
  /** The folder the site converges (`it.vars.root`). */
  root: string;
  stateDir: string;
}

/** How scratch sites reach their target: this machine, unless a suite runs over SSH. */
let targetSettings: Record<string, string | number> = { executor: 'local' };

/** Makes every scratch site's target use these settings (e.g. an SSH server on loopback). */
export function useTargetSettings(settings: Record<string, string | number>): void {
  targetSettings = settings;
}

export function executorUnderTest(): string {
  return String(targetSettings.executor);
}

/** A site with one target `t1` running `run`, its state dir and root in fresh temp folders. */
export function scratchSite(run: string, files: Record<string, string>, extra = ''): Scratch {
  const root = tempDir('cairn-root-');
  const stateDir = join(tempDir('cairn-state-'), 'state');
  const settings = Object.entries(targetSettings).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}\n`).join('');
  const site = makeSite({
    'cairn.yaml': `targets:\n  t1:\n${settings}    state_dir: ${stateDir}\n    run: [${run}]\nvars:\n  root: ${root}\n${extra}`,
    ...files,
  });
  return { site, root, stateDir };
}

export async function converge(s: Scratch, mode: 'plan' | 'apply' = 'apply', args: string[] = [], expectStatus?: number) {
  const r = await runCli([mode, '--site', s.site, '--json', ...args]);
  if (expectStatus !== undefined) assert.equal(r.status, expectStatus, `exit code; stderr:\n${r.stderr}\nstdout:\n${r.stdout}`);
  const report = JSON.parse(r.stdout) as Report;
  const target = report.targets[0]!;
  return { status: r.status, report, target, nodes: target.nodes, stderr: r.stderr };
}

/** `status ref [reason]` per node, for compact assertions. */
export function lines(nodes: NodeResult[]): string[] {
  return nodes.map((n) => `${n.status} ${n.ref}${n.reason ? ` [${n.reason}]` : ''}`);
}
