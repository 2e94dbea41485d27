/**
 * The host name has two halves: the running one (the kernel's node name, `uname -n`) and the one
 * the machine takes at boot (/etc/hostname on Linux, `hostname` in rc.conf on FreeBSD). A node is
 * in sync only when both are the name asked for.
 */
import { outputTail } from '../commands.ts';
import { offers } from '../../executors/types.ts';
import { osSetting } from '../os.ts';
import { shellQuote } from '../../lib/shell.ts';
import { defineProvider, ApplyError, type Current, type ProviderContext } from '../type.ts';
import type { hostnameType } from './type.ts';

const ETC_HOSTNAME = '/etc/hostname';

async function run(ctx: ProviderContext, argv: string[]): Promise<string> {
  const r = await ctx.exec.run(argv);
  if (r.code !== 0) throw new ApplyError(outputTail(r.stderr || r.stdout) || `${argv.join(' ')} exited with ${r.code}`);
  return r.stdout;
}

/**
 * The running half; without a running system (an offline root) there is none, and the name
 * asked for stands in for it: only /etc/hostname is compared and written.
 */
async function runningName(ctx: ProviderContext, want: string): Promise<string> {
  if (!offers(ctx.exec, 'running-system')) return want;
  return (await run(ctx, ['uname', '-n'])).trim();
}

/** The first line of /etc/hostname that is not a comment (systemd allows comments there). */
async function etcHostname(ctx: ProviderContext): Promise<string | undefined> {
  const text = (await ctx.exec.readFile(ETC_HOSTNAME))?.toString('utf8');
  return text?.split('\n').map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#'));
}

/** `{ name }` as asked when both halves match; else the half that differs, and both for reports. */
function current(want: string, running: string, persisted: string | undefined): Current {
  const name = running !== want ? running : persisted !== want ? persisted ?? '' : want;
  return { name, running, persisted: persisted ?? null };
}

async function writeEtcHostname(ctx: ProviderContext, name: string): Promise<void> {
  await ctx.exec.writeFile(ETC_HOSTNAME, `${name}\n`, { mode: 0o644 });
}

/** Linux without systemd (OpenRC, BusyBox init), and systemd hosts where hostnamed cannot be reached. */
async function applyEtcHostname(ctx: ProviderContext, want: string, was: Current): Promise<void> {
  if (was?.persisted !== want) await writeEtcHostname(ctx, want);
  if (was?.running !== want) await run(ctx, ['hostname', want]);
}

/** hostnamectl's words for "systemd-hostnamed (or the bus) is not there", not for a refusal. */
const NO_HOSTNAMED = /Failed to (connect to|create) bus|System has not been booted with systemd|Failed to activate service|Unit dbus\.socket not found/i;

export const hostnamectlHostname = defineProvider<typeof hostnameType>({
  type: 'hostname',
  name: 'hostnamectl',
  suitable: (facts, os) => facts.kernel === 'linux' && osSetting(os, facts, 'init_system') === 'systemd',

  // hostnamectl when systemd-hostnamed answers; else the file and the running name (a root being built, a rescue system).
  shell: {
    check: (desired) => `cairn_hostname_is ${shellQuote(desired.name)}`,
    apply: (desired) => `{ command -v hostnamectl >/dev/null 2>&1 && hostnamectl set-hostname ${shellQuote(desired.name)}; } || cairn_set_hostname ${shellQuote(desired.name)}`,
  },

  async read(ctx, desired) {
    return current(desired.name, await runningName(ctx, desired.name), await etcHostname(ctx));
  },

  async apply(ctx, _action, desired, was) {
    const want = desired.name;
    if (!offers(ctx.exec, 'running-system')) return applyEtcHostname(ctx, want, was);
    // Sets the static name (/etc/hostname) and the running one in one go, and tells the system.
    const r = await ctx.exec.run(['hostnamectl', 'set-hostname', want]);
    if (r.code === 0) return;
    const error = outputTail(r.stderr || r.stdout);
    if (!NO_HOSTNAMED.test(error)) throw new ApplyError(error || `hostnamectl set-hostname exited with ${r.code}`);
    await applyEtcHostname(ctx, want, was);
  },
});

export const etcHostnameHostname = defineProvider<typeof hostnameType>({
  type: 'hostname',
  name: 'etc-hostname',
  suitable: (facts) => facts.kernel === 'linux',

  shell: {
    check: (desired) => `cairn_hostname_is ${shellQuote(desired.name)}`,
    apply: (desired) => `cairn_set_hostname ${shellQuote(desired.name)}`,
  },

  async read(ctx, desired) {
    return current(desired.name, await runningName(ctx, desired.name), await etcHostname(ctx));
  },

  async apply(ctx, _action, desired, was) {
    await applyEtcHostname(ctx, desired.name, was);
  },
});

export const sysrcHostname = defineProvider<typeof hostnameType>({
  type: 'hostname',
  name: 'sysrc',
  suitable: (facts) => facts.kernel === 'freebsd',

  async read(ctx, desired) {
    const r = await ctx.exec.run(['sysrc', '-n', 'hostname']);
    // Not set in rc.conf: "sysrc: unknown variable 'hostname'" (exit 1).
    if (r.code !== 0 && !/unknown variable/.test(r.stderr)) throw new ApplyError(outputTail(r.stderr || r.stdout));
    const persisted = r.code === 0 ? r.stdout.trim() : undefined;
    return current(desired.name, await runningName(ctx, desired.name), persisted);
  },

  async apply(ctx, _action, desired, was) {
    const want = desired.name;
    if (was?.persisted !== want) await run(ctx, ['sysrc', `hostname=${want}`]);
    if (was?.running !== want) await run(ctx, ['hostname', want]);
  },
});
