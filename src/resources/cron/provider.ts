import { outputTail } from '../commands.ts';
import { defineProvider, ApplyError, type ProviderContext, type Desired } from '../type.ts';
import type { cronType } from './type.ts';
import { findJob, formatJob, parseCrontab, renderCrontab, withJob, type Crontab, type CronJob } from './crontab.ts';
import { shellCommand } from '../../lib/shell.ts';

type CronAttributes = Desired<typeof cronType>;

const FIELDS = ['minute', 'hour', 'day', 'month', 'weekday'] as const;

/**
 * What `crontab -l` says when the user has no crontab yet (an empty one, not an error): Vixie and
 * Debian cron, cronie and FreeBSD say "no crontab for root"; BusyBox lists the spool file with
 * cat's code and says "crontab: can't open 'root': No such file or directory".
 */
function noCrontab(stderr: string, user: string): boolean {
  return /\bno crontab for\b/.test(stderr) || stderr.includes(`can't open '${user}': No such file or directory`);
}

/** The user's crontab, read once per user until the target next changes. */
function readCrontab(ctx: ProviderContext, user: string): Promise<Crontab> {
  return ctx.batch(`cron:${user}`, async () => {
    const r = await ctx.exec.run(['crontab', '-l', '-u', user]);
    if (r.code === 0) return parseCrontab(r.stdout);
    if (noCrontab(r.stderr, user)) return parseCrontab('');
    throw new ApplyError(outputTail(r.stderr || r.stdout) || `crontab -l -u ${user} exited with ${r.code}`);
  });
}

function jobOf(desired: CronAttributes): CronJob {
  const command = String(desired.command);
  if (typeof desired.special === 'string') return { special: desired.special, command };
  return { command, ...Object.fromEntries(FIELDS.map((f) => [f, String(desired[f] ?? '*')])) };
}

export const crontabCron = defineProvider<typeof cronType>({
  type: 'cron',
  name: 'crontab',
  // Vixie/Debian cron, cronie, BusyBox and FreeBSD all take these arguments.
  suitable: () => true,

  // The entry under its `# cairn: <name>` marker; every other line of the crontab kept
  // (resources/shell-prelude.ts: cairn_cron_is, cairn_cron_set).
  shell: {
    check: (desired) => shellCommand(['cairn_cron_is', desired.user, desired.name, desired.ensure === 'absent' ? '' : formatJob(jobOf(desired))]),
    apply: (desired) => shellCommand(['cairn_cron_set', desired.user, desired.name, ...(desired.ensure === 'absent' ? [] : [formatJob(jobOf(desired))])]),
  },

  async read(ctx, desired) {
    const user = desired.user;
    const job = findJob(await readCrontab(ctx, user), desired.name);
    if (!job) return undefined;
    const current: Record<string, unknown> = { name: desired.name, user, ensure: 'present', command: job.command };
    if (job.special !== undefined) {
      current.special = job.special;
      // An @daily line has no schedule fields: in sync with the part's (all `*`) only when the
      // part asks for a special too.
      if (desired.special !== undefined) for (const f of FIELDS) current[f] = desired[f];
    } else {
      for (const f of FIELDS) current[f] = job[f];
    }
    return current;
  },

  async apply(ctx, action, desired) {
    const user = desired.user;
    const tab = await readCrontab(ctx, user);
    const next = withJob(tab, desired.name, action === 'destroy' ? undefined : jobOf(desired));
    const r = await ctx.exec.run(['crontab', '-u', user, '-'], { stdin: renderCrontab(next) });
    if (r.code !== 0) throw new ApplyError(outputTail(r.stderr || r.stdout) || `crontab -u ${user} - exited with ${r.code}`);
  },
});
