import { createTwoFilesPatch } from 'diff';
import { defineProvider, ApplyError, type Action, type Desired, type FileEdits } from '../type.ts';
import type { lineType } from './type.ts';
import { quote as q } from '../shell-fragments.ts';

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

/**
 * What this part finds in a file holding `text` (undefined: no file) and the text its change
 * leaves there: `read` and `apply` are these over the file, and the engine gathers the lines of
 * one file through them (FileEdits).
 */
const lineEdits: FileEdits<typeof lineType> = {
  path: (desired) => desired.path,
  // The whole file comes along (`file_text`, compared by no one) for the plan's diff.
  current(text, desired) {
    if (text === undefined) return undefined;
    const all = lines(text);
    const i = find(all, desired);
    return i < 0 ? { path: desired.path, ensure: 'absent', file_text: text } : { path: desired.path, ensure: 'present', text: all[i], file_text: text };
  },
  edit(text, desired, action) {
    if (text === undefined && desired.create === false && action !== 'destroy') throw new ApplyError(`${desired.path} does not exist (create: false)`);
    return edited(text, desired, action);
  },
};

export const posixLine = defineProvider<typeof lineType>({
  type: 'line',
  name: 'posix',
  suitable: () => true,

  async read(ctx, desired) {
    return lineEdits.current((await ctx.exec.readFile(desired.path))?.toString('utf8'), desired);
  },

  async apply(ctx, action, desired) {
    const text = (await ctx.exec.readFile(desired.path))?.toString('utf8');
    await ctx.exec.writeFile(desired.path, lineEdits.edit(text, desired, action));
  },

  edits: lineEdits,

  diff(desired, current) {
    const before = typeof current?.file_text === 'string' ? current.file_text : undefined;
    const action: Action = desired.ensure === 'absent' ? 'destroy' : 'update';
    const after = edited(before, desired, action);
    if (after === before) return undefined;
    const path = desired.path;
    return createTwoFilesPatch(before === undefined ? '/dev/null' : path, path, before ?? '', after, undefined, undefined, { context: 3 });
  },

  shell: {
    check(desired) {
      const p = q(desired.path);
      const found = lineFound(desired);
      if (desired.ensure === 'absent') return `{ [ ! -e ${p} ] || ! ${found}; }`;
      if (desired.match === undefined) return `grep -qxF -- ${q(desired.text)} ${p} 2>/dev/null`;
      return `${awkLine(desired)} 'BEGIN { re = ENVIRON["CAIRN_RE"]; t = ENVIRON["CAIRN_TEXT"] } !f && $0 ~ re { f = 1; m = ($0 == t) } $0 == t { e = 1 } END { exit !(f ? m : e) }' ${p} 2>/dev/null`;
    },
    // Without match, a file without the line is a create for the engine too (current: absent).
    exists: (desired) => (desired.match === undefined ? 'return 1' : lineFound(desired)),
    apply: shellApply,
    ownPath: () => true,
    // A plain line (no match, present, the file made if missing) is looked for in, and appended
    // to, the file's lines as the group read them once (cairn_lhas, cairn_lstage); the commit
    // writes each edited file once. What is not a readable regular file gets the plain apply.
    stage(desired, ids) {
      if (desired.ensure === 'absent' || desired.match !== undefined || desired.create === false || desired.path.includes('\n') || desired.text.includes('\n')) return undefined;
      const words = `${ids.file(desired.path)} ${q(desired.path)} ${q(desired.text)}`;
      return {
        path: desired.path,
        check: `cairn_lhas ${words}`,
        turn: (node: number) => `cairn_tn ${node} ${words}`,
        apply: `if ! cairn_lstage ${words}; then\n${shellApply(desired, 'create')}\nfi`,
      };
    },
  },
});

/** The shell trait's apply: awk edits the file's text, cairn_put writes it atomically. */
function shellApply(desired: LineAttributes, action: Action): string {
  const p = q(desired.path);
  const missing = desired.create === false && action !== 'destroy'
    ? `if [ ! -e ${p} ]; then printf '%s does not exist (create: false)\\n' ${p}; return 1; fi\n` : '';
  const program = action === 'destroy'
    ? '{ if (!(re != "" ? $0 ~ re : $0 == t)) print }'
    : '{ l[++n] = $0 } END { for (i = 1; i <= n && re != ""; i++) if (l[i] ~ re) { k = i; break } ' +
      'if (!k) for (i = 1; i <= n; i++) if (l[i] == t) { k = i; break } if (k) l[k] = t; else l[++n] = t; for (i = 1; i <= n; i++) print l[i] }';
  // The edited text comes back whole (the x keeps its final newlines) and is written atomically.
  return `${missing}if [ -e ${p} ]; then src=${p}; else src=/dev/null; fi\n` +
    `text=$(${awkLine(desired)} 'BEGIN { re = ENVIRON["CAIRN_RE"]; t = ENVIRON["CAIRN_TEXT"] } ${program}' "$src" && echo x) || return 1\n` +
    `cairn_put ${p} '' '' '' '' "\${text%x}"`;
}

/** `awk` with the part's regular expression and text in its environment (no escapes processed there). */
function awkLine(desired: LineAttributes): string {
  return `CAIRN_RE=${q(ereOf(desired.match))} CAIRN_TEXT=${q(desired.text)} awk`;
}

/** A command that returns 0 when the file has the line this part manages (provider's find()). */
function lineFound(desired: LineAttributes): string {
  if (desired.match === undefined) return `grep -qxF -- ${q(desired.text)} ${q(desired.path)} 2>/dev/null`;
  return `${awkLine(desired)} 'BEGIN { re = ENVIRON["CAIRN_RE"]; t = ENVIRON["CAIRN_TEXT"] } $0 ~ re || $0 == t { f = 1 } END { exit !f }' ${q(desired.path)} 2>/dev/null`;
}

/**
 * A `match` (a JavaScript regular expression) as awk's extended one: the class escapes \d, \s and
 * \w spelt as bracket expressions; the rest of the common syntax is the same in both.
 */
function ereOf(match: string | undefined): string {
  if (match === undefined) return '';
  return match.replace(/\\([dswDSW])/g, (_, c: string) => ({ d: '[0-9]', s: '[[:space:]]', w: '[[:alnum:]_]', D: '[^0-9]', S: '[^[:space:]]', W: '[^[:alnum:]_]' })[c]!);
}
