/** `cairn facts`: what each selected target reports about itself, gathered in one round trip each. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ExitCode } from '../lib/errors.ts';
import { closeSessions, openSessions, type Session } from './sessions.ts';
import { SiteCompiler } from './site-compiler.ts';
import { writeOut } from './output.ts';
import { masterFor, type MasterFlags } from './master-client.ts';

export interface FactsOptions extends MasterFlags {
  site: string;
  target?: string[];
  json?: boolean;
  forks: number;
  acceptNewHostKeys?: boolean;
}

/** `key: value` lines, nested keys dotted, lists joined: easy to read and to grep. */
export function factLines(facts: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(facts).flatMap(([key, value]) => {
    const name = `${prefix}${key}`;
    if (value && typeof value === 'object' && !Array.isArray(value)) return factLines(value as Record<string, unknown>, `${name}.`);
    return [`${name}: ${Array.isArray(value) ? value.join(', ') : String(value)}`];
  });
}

export async function showFacts(options: FactsOptions, sources: Map<string, string>, localFacts: () => Record<string, unknown>): Promise<number> {
  let sessions: Session[];
  if (!existsSync(join(options.site, 'cairn.yaml')) && !options.target?.length) {
    // No site here: the facts of this machine.
    sessions = [{ name: 'local', facts: localFacts() }];
  } else {
    const selected = await new SiteCompiler({ site: options.site }, sources).select(options.target ?? []);
    sessions = await openSessions(selected, {
      forks: options.forks,
      ...(options.acceptNewHostKeys ? { acceptNewHostKeys: true } : {}),
      localFacts,
      // An agent's facts are those it last reported to the master.
      master: masterFor(options),
    });
    await closeSessions(sessions);
  }
  if (options.json) {
    const targets = sessions.map((s) => (s.error !== undefined ? { name: s.name, error: s.error } : { name: s.name, facts: s.facts }));
    writeOut(`${JSON.stringify({ version: 1, targets }, null, 2)}\n`);
  } else {
    for (const s of sessions) {
      writeOut(s.error !== undefined ? `${s.name}: UNREACHABLE: ${s.error}\n`
        : `${s.name}\n${factLines(s.facts ?? {}).map((l) => `  ${l}\n`).join('')}`);
    }
  }
  return sessions.some((s) => s.error !== undefined) ? ExitCode.unreachable : ExitCode.ok;
}
