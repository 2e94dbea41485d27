import { z } from 'zod';
import { ensurePresence } from '../attributes.ts';
import { defineType, update } from '../define.ts';

/** A schedule field: anything cron takes (`*`, `5`, `1-5`, `mon,wed`, steps), but one word. */
const field = z
  .union([z.string(), z.number()])
  .transform(String)
  .refine((v) => /^\S+$/.test(v), 'a schedule field is one word with no spaces')
  .default('*');

/** Shorthands cron implementations share (Vixie/Debian cron, cronie, BusyBox crond, FreeBSD cron). */
export const SPECIALS = ['reboot', 'yearly', 'annually', 'monthly', 'weekly', 'daily', 'midnight', 'hourly'] as const;

const oneLine = (what: string) => z.string().min(1).refine((v) => !/[\r\n]/.test(v), `${what} must be one line`);

export const cronType = defineType({
  name: 'cron',
  key: 'name',
  description:
    "A crontab entry, identified by name in the user's crontab: a `# cairn: <name>` comment line above it. " +
    'Every other line of the crontab is left as it is.',
  schema: z
    .strictObject({
      name: oneLine('a cron name').describe('the name in the marker comment above the entry'),
      command: update(oneLine('a cron command').optional().describe('the command line (required unless absent)')),
      user: z.string().min(1).default('root').describe("whose crontab (default root)"),
      ensure: update(ensurePresence),
      minute: update(field),
      hour: update(field),
      day: update(field),
      month: update(field),
      weekday: update(field),
      special: update(z.enum(SPECIALS).optional().describe('run @reboot, @daily, … instead of at minute/hour/day/month/weekday')),
    })
    .refine((a) => a.ensure === 'absent' || a.command !== undefined, { message: 'command is required', path: ['command'] })
    .refine((a) => a.special === undefined || [a.minute, a.hour, a.day, a.month, a.weekday].every((f) => f === '*'), {
      message: 'special replaces minute, hour, day, month and weekday: give one or the other',
      path: ['special'],
    }),
  // Reading runs `crontab -l`: a requisite that would change (the cron package, the user) makes a
  // plan's reading provisional.
  reads: () => ({ paths: [], commands: true }),
  stateful: false,
  // Implicit ordering (DESIGN §6): after the user whose crontab it is, when it is in the run.
  autoRequires: [{ attribute: 'user', type: 'user' }],
});

export default cronType;
