import { createTwoFilesPatch } from 'diff';
import { defineProvider, ApplyError, type Action, type Desired } from '../type.ts';
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

/** The file's text after this part's edit; `before` undefined: the file does not exist. */
function edited(before: string | undefined, desired: LineAttributes, action: Action): string {
  const all = before === undefined ? [] : lines(before);
  if (action === 'destroy') {
    const re = typeof desired.match === 'string' ? new RegExp(desired.match) : undefined;
    const kept = all.filter((l) => (re ? !re.test(l) : l !== desired.text));
    return kept.length ? `${kept.join('\n')}\n` : '';
  }
  const i = find(all, desired);
  if (i >= 0) all[i] = desired.text;
  else all.push(desired.text);
  return `${all.join('\n')}\n`;
}

export const posixLine = defineProvider<typeof lineType>({
  type: 'line',
  name: 'posix',
  suitable: () => true,

  // The whole file comes along (`file_text`, compared by no one) for the plan's diff.
  async read(ctx, desired) {
    const bytes = await ctx.exec.readFile(desired.path);
    if (!bytes) return undefined;
    const text = bytes.toString('utf8');
    const i = find(lines(text), desired);
    return i < 0 ? { path: desired.path, ensure: 'absent', file_text: text } : { path: desired.path, ensure: 'present', text: lines(text)[i], file_text: text };
  },

  async apply(ctx, action, desired) {
    const path = desired.path;
    const bytes = await ctx.exec.readFile(path);
    if (!bytes && desired.create === false && action !== 'destroy') throw new ApplyError(`${path} does not exist (create: false)`);
    await ctx.exec.writeFile(path, edited(bytes?.toString('utf8'), desired, action));
  },

  diff(desired, current) {
    const before = typeof current?.file_text === 'string' ? current.file_text : undefined;
    const action: Action = desired.ensure === 'absent' ? 'destroy' : 'update';
    const after = edited(before, desired, action);
    if (after === before) return undefined;
    const path = desired.path;
    return createTwoFilesPatch(before === undefined ? '/dev/null' : path, path, before ?? '', after, undefined, undefined, { context: 3 });
  },
});
