/**
 * Facts that stand in for a target's own when none are gathered: a `--facts FILE` (one target's
 * facts, or what `cairn facts --json` prints), and the facts assumed for a target nobody has
 * reported on (`cairn show` without `--facts`, `cairn push` for a target with no agent yet).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { Diagnostics, inputError, type SourcePos } from '../lib/errors.ts';
import { LineIndex } from '../lib/positions.ts';
import { parseYaml } from '../site/yaml.ts';
import { validate } from '../site/validate.ts';
import type { Catalog, Target } from './catalog.ts';
import { osTable } from './compile.ts';

/** The keys executors/facts.ts reports; a file may give some (a hand-written file rarely has all). */
const factsSchema = z.object({
  kernel: z.string(),
  kernel_release: z.string(),
  os_family: z.string(),
  distribution: z.string(),
  release: z.union([z.string(), z.number()]),
  architecture: z.string(),
  init_system: z.string(),
  package_manager: z.string(),
  hostname: z.string(),
  addresses: z.object({ ipv4: z.array(z.string()), ipv6: z.array(z.string()) }).partial().strict(),
  cpus: z.number().int().nonnegative(),
  memory_mb: z.number().nonnegative(),
}).partial().strict();

/** `cairn facts --json`: a target it could not reach has `error` instead of `facts`. */
const factsReportSchema = z.object({
  version: z.literal(1),
  targets: z.array(z.object({ name: z.string(), facts: factsSchema.optional(), error: z.string().optional() }).strict()),
}).strict();

const SHAPES = "one target's facts (a map: os_family, distribution, release, …) or what `cairn facts --json` prints ({ version: 1, targets: [{ name, facts }] })";

export interface FactsFile {
  path: string;
  /** The facts each of `names` gets; every name must have some, else an input error names those without. */
  factsFor(names: readonly string[]): Map<string, Record<string, unknown>>;
}

/** Reads and checks `--facts FILE`; `sources` gets its text, for errors that quote its lines. */
export function readFactsFile(path: string, sources: Map<string, string>): FactsFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw inputError(`--facts: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  sources.set(path, text);
  const lines = new LineIndex(text);
  const doc = parseYaml(text, (offset, length) => ({ file: path, ...lines.lineCol(offset), length }), 'facts file');
  const top: SourcePos = { file: path, line: 1, col: 1 };
  const d = new Diagnostics();
  const prefix = `facts file ${path}: `;
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    throw inputError(`${prefix}expected ${SHAPES}`, top);
  }
  if ('targets' in doc || 'version' in doc) {
    const report = validate(factsReportSchema, doc, d, { prefix, fallback: top });
    d.throwIfAny();
    for (const entry of report!.targets) {
      if ((entry.facts === undefined) === (entry.error === undefined)) {
        d.add(`${prefix}target ${entry.name}: an entry holds either facts or error`, top);
      }
    }
    d.throwIfAny();
    const byName = new Map(report!.targets.map((t) => [t.name, t]));
    return {
      path,
      factsFor(names) {
        const out = new Map<string, Record<string, unknown>>();
        const missing: string[] = [];
        for (const name of names) {
          const facts = byName.get(name)?.facts;
          if (facts) out.set(name, facts);
          else missing.push(name + (byName.get(name)?.error !== undefined ? ` (unreachable when gathered: ${byName.get(name)!.error})` : ''));
        }
        if (missing.length) {
          throw inputError(`${prefix}no facts for ${missing.join(', ')}`, top,
            `it has facts for ${[...byName.values()].filter((t) => t.facts).map((t) => t.name).join(', ') || 'no target'}; gather them with \`cairn facts --json -t NAME > ${path}\``);
        }
        return out;
      },
    };
  }
  const facts = validate(factsSchema, doc, d, { prefix, fallback: top });
  d.throwIfAny();
  if (Object.keys(facts!).length === 0) throw inputError(`${prefix}holds no facts: expected ${SHAPES}`, top);
  // One set of facts stands in for every target's own.
  return { path, factsFor: (names) => new Map(names.map((n) => [n, facts!])) };
}

/** The platform assumed when a target's facts are not known: the one most sites are written for. */
const ASSUMED = { kernel: 'linux', kernel_release: '6.1.0', os_family: 'debian', distribution: 'debian', release: '12', architecture: 'x86_64' };

/**
 * The facts of a generic Debian 12 host, its init system and package manager as the OS tables
 * (with the site's own laid over) give them for Debian; hostname the target's host or name.
 */
export function assumedFacts(c: Catalog, target: Target): Record<string, unknown> {
  const os = osTable(c, ASSUMED);
  const host = typeof target.settings.host === 'string' ? target.settings.host : undefined;
  const isIp = host !== undefined && /^[0-9.]+$|:/.test(host);
  return {
    ...ASSUMED,
    init_system: typeof os.init_system === 'string' ? os.init_system : 'systemd',
    package_manager: typeof os.package_manager === 'string' ? os.package_manager : 'apt',
    hostname: host !== undefined && !isIp ? host : target.name,
    addresses: { ipv4: isIp && !host.includes(':') ? [host] : [], ipv6: isIp && host.includes(':') ? [host] : [] },
    cpus: 1,
    memory_mb: 1024,
  };
}

/** One line saying what was assumed, for the commands that assume it. */
export function describeAssumed(facts: Record<string, unknown>): string {
  return `a generic ${String(facts.distribution)} ${String(facts.release)} host (os_family ${String(facts.os_family)}, ${String(facts.architecture)}, ` +
    `${String(facts.init_system)}, ${String(facts.package_manager)}, ${String(facts.cpus)} CPU, ${String(facts.memory_mb)} MB; hostname: the target's host or name)`;
}
