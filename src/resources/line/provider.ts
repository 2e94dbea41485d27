import { defineProvider, ApplyError, type Desired } from '../type.ts';
import type { lineType } from './type.ts';

type LineAttributes = Desired<typeof lineType>;

function lines(text: string): string[] {
  const all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all;
}

/** The index of the line this part manages: the first matching `match`, else one equal to `text`. */
function find(all: string[], desired: LineAttributes): number {
  if (typeof desired.match === 'string') {
    const re = new RegExp(desired.match);
    const i = all.findIndex((l) => re.test(l));
    if (i >= 0) return i;
  }
  return all.indexOf(desired.text);
}

export const posixLine = defineProvider<typeof lineType>({
  type: 'line',
  name: 'posix',
  suitable: () => true,

  async read(ctx, desired) {
    const bytes = await ctx.exec.readFile(desired.path);
    if (!bytes) return undefined;
    const all = lines(bytes.toString('utf8'));
    const i = find(all, desired);
    return i < 0 ? undefined : { path: desired.path, ensure: 'present', text: all[i] };
  },

  async apply(ctx, action, desired) {
    const path = desired.path;
    const bytes = await ctx.exec.readFile(path);
    if (!bytes && desired.create === false && action !== 'destroy') throw new ApplyError(`${path} does not exist (create: false)`);
    const all = bytes ? lines(bytes.toString('utf8')) : [];
    if (action === 'destroy') {
      const re = typeof desired.match === 'string' ? new RegExp(desired.match) : undefined;
      const kept = all.filter((l) => (re ? !re.test(l) : l !== desired.text));
      await ctx.exec.writeFile(path, kept.length ? `${kept.join('\n')}\n` : '');
      return;
    }
    const i = find(all, desired);
    if (i >= 0) all[i] = desired.text;
    else all.push(desired.text);
    await ctx.exec.writeFile(path, `${all.join('\n')}\n`);
  },
});
