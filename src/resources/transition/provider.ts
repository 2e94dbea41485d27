import { defineProvider, ApplyError } from '../type.ts';
import type { transitionType } from './type.ts';

/**
 * DESIGN §5.7: "in sync" unless a prior_to node would change now; applying puts the resource
 * through the transitional attributes, through the engine (so events, noop and reports apply).
 */
export const engineTransition = defineProvider<typeof transitionType>({
  type: 'transition',
  name: 'engine',
  suitable: () => true,

  async read(ctx, desired) {
    for (const id of ctx.engine.related('prior_to')) {
      if (await ctx.engine.wouldChange(id)) return undefined;
    }
    return { name: desired.name };
  },

  async apply(ctx, _action, desired) {
    let changed = false;
    for (const id of ctx.engine.related('resource')) {
      const r = await ctx.engine.applyWith(id, desired.attributes);
      if (r.failed) throw new ApplyError(`${id}: ${r.failed}`);
      changed ||= r.changed;
    }
    return changed ? undefined : { changed: false, reason: 'resource already in the transitional state' };
  },
});
