/**
 * What the lifecycle types (jail, container, guest; DESIGN §6) share on the compile side: the
 * attributes every one of them has, with the change classes the design gives them. Each type
 * spreads these into its schema and adds its own; the design's validations that need several
 * attributes at once stay with the type.
 */
import { z } from 'zod';
import { rebuild, update, writeOnly } from './define.ts';

export const lifecycleAttributes = {
  ensure: rebuild(z.enum(['present', 'absent']).default('present').describe('present (default) or absent: absent destroys it')),
  state: update(z.enum(['running', 'stopped']).optional().describe('running or stopped; left as it is when not given')),
  boot: update(z.boolean().optional().describe('start it when the host starts; left as it is when not given')),
  user_data: rebuild(writeOnly(z.string().optional()
    .describe('a script run once inside it right after it is created; it cannot be read back, so a change is seen through its hash and rebuilds it'))),
};

/** What a notification does to one (DESIGN §6): a stopped one stays stopped. */
export const LIFECYCLE_REFRESH = 'restart when running';
