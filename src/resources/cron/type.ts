import { z } from 'zod';
import { defineType, ensurePresence } from '../type.ts';

const field = z.union([z.string(), z.number()]).transform(String).default('*');

export const cronType = defineType({
  name: 'cron',
  key: 'name',
  description: "A crontab entry, identified by name in the user's crontab.",
  schema: z.strictObject({
    name: z.string().min(1),
    command: z.string().optional(),
    user: z.string().default('root'),
    ensure: ensurePresence,
    minute: field,
    hour: field,
    day: field,
    month: field,
    weekday: field,
  }),
  changes: { command: 'update', ensure: 'update', minute: 'update', hour: 'update', day: 'update', month: 'update', weekday: 'update' },
  stateful: false,
});
