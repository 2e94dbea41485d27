import { isTargetFailure } from '../../executors/types.ts';
import { defineProvider, ApplyError, SkipNode } from '../type.ts';
import type { transitionType } from './type.ts';

/**
 * DESIGN §5.7: "in sync" unless a prior_to node would change now and will get its turn (a
 * transition for a change that will not happen would only disturb the resource); applying puts
 * the resource through the transitional attributes, through the engine (so events, noop and
 * reports apply).
 */
export const engineTransition = defineProvider<typeof transitionType>({
  type: 'transition',
  name: 'engine',
  suitable: () => true,

  async read(ctx, desired) {
    let blocked: string | undefined;
    for (const id of ctx.engine.related('prior_to')) {
      const runs = ctx.engine.willRun(id);
      if (!runs && blocked !== undefined) continue;
      // A node that will not run is read only to choose the reason; one it cannot read (its
      // failed requisite may be why) is taken as changing.
      const changes = await ctx.engine.wouldChange(id).catch((err: unknown) => {
        if (runs || !isTargetFailure(err)) throw err;
        return true;
      });
      if (!changes) continue;
      if (runs) return undefined;
      blocked = ctx.engine.refOf(id);
    }
    if (blocked !== undefined) throw new SkipNode(`prior_to will not run: ${blocked}`);
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

  shell: {
    inline: true,
    check(_desired, ctx) {
      if (!ctx) throw new Error('a transition is exported with the exporter\'s context');
      // The provider's read(): the first prior_to that would change and will run decides.
      const lines = ['cairn_blocked='];
      for (const h of ctx.related('prior_to')) {
        lines.push(`if ${ctx.willRun(h)}; then cairn_runs=1; else cairn_runs=0; fi`,
          `if [ $cairn_runs = 1 ] || [ -z "$cairn_blocked" ]; then if ${ctx.wouldChange(h)}; then [ $cairn_runs = 0 ] || return 1; cairn_blocked=${ctx.refOf(h)}; fi; fi`);
      }
      lines.push('[ -z "$cairn_blocked" ] && return 0', 'cairn_skip="prior_to will not run: $cairn_blocked"', 'return 1');
      return lines.join('\n');
    },
    apply(desired, _action, ctx) {
      if (!ctx) throw new Error('a transition is exported with the exporter\'s context');
      const lines = ['cairn_any=0'];
      for (const h of ctx.related('resource')) {
        lines.push(`${ctx.applyWith(h, desired.attributes)}`, `case $? in 0) cairn_any=1 ;; 2) cairn_error=${ctx.refOf(h)}': failed'; return 1 ;; esac`);
      }
      lines.push('[ $cairn_any = 1 ] && return 0', "cairn_reason='resource already in the transitional state'", 'return 100');
      return lines.join('\n');
    },
  },
});
