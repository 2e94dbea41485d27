/**
 * Kernel parameters: every sysctl node of the run is read with one `sysctl k1 k2 …` (and the file
 * that keeps them across reboots with it); a change is `sysctl -w k=v` (FreeBSD: `sysctl k=v`)
 * plus the parameter's line in that file.
 */
import { outputTail } from '../commands.ts';
import { dirname } from 'node:path';
import { freebsdConfPath, linuxConfPath } from './paths.ts';
import { ApplyError, type Provider, type ProviderContext, type ShellProvider } from '../type.ts';
import { shellCommand, shellQuote } from '../../lib/shell.ts';
import type { sysctlType } from './type.ts';

interface Flavour {
  /** `sysctl` with these arguments prints a line matching `outputLine` (name, value) for each name. */
  readArgs: string[];
  outputLine: RegExp;
  setArgv(name: string, value: string): string[];
  /** The file that keeps the values across reboots. */
  confPath(os: Record<string, unknown>): string;
  confLine(name: string, value: string): string;
  /** The start of a file Cairn creates. */
  confHeader: string;
}

/** `name = value` (procps, BusyBox; an empty value may lose its trailing space). */
export const LINUX_OUTPUT_LINE = /^([^\s=]+) =(?: |$)(.*)$/;
/** `name=value` (FreeBSD's `sysctl -e`). */
export const FREEBSD_OUTPUT_LINE = /^([^\s=]+)=(.*)$/;

/** procps' and BusyBox's sysctl (they print `name = value` and take `-w`). */
const LINUX: Flavour = {
  readArgs: [],
  outputLine: LINUX_OUTPUT_LINE,
  setArgv: (name, value) => ['sysctl', '-w', `${name}=${value}`],
  confPath: linuxConfPath,
  confLine: (name, value) => `${name} = ${value}`,
  confHeader: '# Kernel parameters set by Cairn (sysctl parts), applied at boot. Lines Cairn does not manage are kept.\n',
};

/** FreeBSD's sysctl (`-e`: `name=value`, the form /etc/sysctl.conf takes). */
const FREEBSD: Flavour = {
  readArgs: ['-e'],
  outputLine: FREEBSD_OUTPUT_LINE,
  setArgv: (name, value) => ['sysctl', `${name}=${value}`],
  confPath: freebsdConfPath,
  confLine: (name, value) => `${name}=${value}`,
  confHeader: '',
};

/** sysctl names may be written with dots or slashes (`net/ipv4/ip_forward`). */
function keyOf(name: string): string {
  return name.replace(/\//g, '.');
}

/** Runs of whitespace are one space: sysctl prints multi-value keys with tabs. */
export function normalizeValue(value: string): string {
  return value.trim().split(/\s+/).join(' ');
}

/**
 * The values of the names asked for in sysctl's output, a `line` match each (name, value); a line
 * that is no `name<separator>value` continues the value above it (FreeBSD's kern.version spans
 * lines). Names not asked for are skipped.
 */
export function parseSysctlOutput(stdout: string, names: string[], line: RegExp): Map<string, string> {
  const wanted = new Set(names.map(keyOf));
  const values = new Map<string, string>();
  let last: string | undefined;
  for (const text of stdout.replace(/\n$/, '').split('\n')) {
    const m = line.exec(text);
    if (m) {
      const key = keyOf(m[1]!);
      last = wanted.has(key) ? key : undefined;
      if (last !== undefined) values.set(last, m[2]!);
    } else if (last !== undefined) {
      values.set(last, `${values.get(last)!}\n${text}`);
    }
  }
  return values;
}

const CONF_LINE = /^\s*-?\s*([^#;\s=][^=]*?)\s*=\s*(.*?)\s*$/;

/** `name = value` (or `name=value`) lines of a sysctl.conf-style file; the last one of a name wins. */
export function parseConf(text: string): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = CONF_LINE.exec(line);
    if (m) values.set(keyOf(m[1]!), m[2]!);
  }
  return values;
}

/** The file with `name`'s line replaced by `line` (or appended), or removed when `line` is undefined. */
export function withConfLine(text: string, name: string, line: string | undefined): string {
  const key = keyOf(name);
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const out: string[] = [];
  let placed = false;
  for (const l of lines) {
    const m = CONF_LINE.exec(l);
    if (!m || keyOf(m[1]!) !== key) {
      out.push(l);
    } else if (line !== undefined && !placed) {
      out.push(line);
      placed = true;
    }
  }
  if (line !== undefined && !placed) out.push(line);
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

interface Reading {
  values: Map<string, string>;
  stderr: string;
  persisted: Map<string, string>;
}

/** Every sysctl node's value in one command, and the persisted file: once until the target changes. */
function readAll(ctx: ProviderContext, flavour: Flavour): Promise<Reading> {
  return ctx.batch('sysctl', async () => {
    const names = [...new Set(ctx.peers().map((p) => String(p.name)))];
    // An unknown name makes sysctl complain on stderr and exit non-zero, yet it prints the others.
    const r = await ctx.exec.run(['sysctl', ...flavour.readArgs, ...names]);
    const conf = (await ctx.exec.readFile(flavour.confPath(ctx.os)))?.toString('utf8') ?? '';
    return { values: parseSysctlOutput(r.stdout, names, flavour.outputLine), stderr: r.stderr, persisted: parseConf(conf) };
  });
}

/** sysctl's own complaint about `name` ("cannot stat /proc/sys/…", "unknown oid '…'"). */
function complaintAbout(stderr: string, name: string): string {
  const slashed = (s: string) => s.replace(/\./g, '/');
  const escaped = slashed(keyOf(name)).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const about = new RegExp(`${escaped}(?![\\w/])`);
  const lines = stderr.split('\n').filter((l) => about.test(slashed(l)));
  return lines.join('\n') || outputTail(stderr) || `sysctl printed no value for ${name}`;
}

/**
 * The Linux provider as shell, for `cairn export`: `sysctl -w` when the kernel's value differs,
 * and the parameter's line in the tables' sysctl.d file (resources/shell-prelude.ts: cairn_sysctl_is,
 * cairn_sysctl_kept, cairn_sysctl_conf, cairn_edit).
 */
const linuxShell: ShellProvider<typeof sysctlType> = {
  check(desired, ctx) {
    const os = ctx?.os ?? {};
    const key = keyOf(desired.name);
    const kept = desired.persist === false ? '' : normalizeValue(desired.value);
    return `${shellCommand(['cairn_sysctl_is', key, normalizeValue(desired.value)])} && ${shellCommand(['cairn_sysctl_kept', LINUX.confPath(os), key, kept])}`;
  },
  apply(desired, _action, ctx) {
    const os = ctx?.os ?? {};
    const key = keyOf(desired.name);
    const path = LINUX.confPath(os);
    const live = `{ ${shellCommand(['cairn_sysctl_is', key, normalizeValue(desired.value)])} || ${shellCommand(['sysctl', '-w', `${desired.name}=${desired.value}`])} >/dev/null; }`;
    const kept = desired.persist === false
      ? `{ [ ! -f ${shellQuote(path)} ] || ${shellCommand(['cairn_edit', path, '644', '', 'cairn_sysctl_conf', 'edit', key])}; }`
      : `${shellCommand(['mkdir', '-p', dirname(path)])} && ${shellCommand(['cairn_edit', path, '644', '', 'cairn_sysctl_conf', 'edit', key, LINUX.confLine(desired.name, desired.value), LINUX.confHeader])}`;
    return `${live} &&\n${kept}`;
  },
};

function sysctlProvider(name: string, kernel: string, flavour: Flavour, shell?: ShellProvider<typeof sysctlType>): Provider<typeof sysctlType> {
  return {
    type: 'sysctl',
    name,
    suitable: (facts) => facts.kernel === kernel,
    ...(shell ? { shell } : {}),

    async read(ctx, desired) {
      const key = keyOf(desired.name);
      const want = desired.value;
      const reading = await readAll(ctx, flavour);
      const value = reading.values.get(key);
      if (value === undefined) throw new ApplyError(complaintAbout(reading.stderr, desired.name));
      const persisted = reading.persisted.get(key);
      const same = (v: string) => normalizeValue(v) === normalizeValue(want);
      return {
        name: desired.name,
        value: same(value) ? want : value,
        // persist: true is in sync when the file keeps this value; false, when it keeps none.
        persist: desired.persist === false ? persisted !== undefined : persisted !== undefined && same(persisted),
      };
    },

    async apply(ctx, _action, desired, current) {
      const key = desired.name;
      const want = desired.value;
      if (current?.value === undefined || normalizeValue(String(current.value)) !== normalizeValue(want)) {
        const r = await ctx.exec.run(flavour.setArgv(key, want));
        if (r.code !== 0) throw new ApplyError(outputTail(r.stderr || r.stdout) || `sysctl exited with ${r.code}`);
      }
      const path = flavour.confPath(ctx.os);
      const before = (await ctx.exec.readFile(path))?.toString('utf8');
      const base = before ?? flavour.confHeader;
      const after = withConfLine(base, key, desired.persist === false ? undefined : flavour.confLine(key, want));
      if (after === base) return;
      if (before === undefined && !(await ctx.exec.stat(dirname(path)))) await ctx.exec.mkdir(dirname(path), { parents: true, mode: 0o755 });
      await ctx.exec.writeFile(path, after, before === undefined ? { mode: 0o644 } : {});
    },
  };
}

export const linuxSysctl = sysctlProvider('procps', 'linux', LINUX, linuxShell);
export const freebsdSysctl = sysctlProvider('freebsd', 'freebsd', FREEBSD);
