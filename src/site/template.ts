/**
 * Eta-syntax templates that remember where every output character came from.
 *
 * Why not Eta's own compiler: Eta's compiled function concatenates strings without positions, so an
 * error in YAML produced by a template could only be reported against the rendered text. Users edit
 * the source, so this module tokenises Eta's grammar itself (`<% code %>`, `<%= expr %>`,
 * `<%~ expr %>`, `-`/`_` trim modifiers, quotes and comments inside tags, exactly as Eta's parser
 * does) and generates a function that records, for each output piece, the source offset it came from.
 *
 * Whitespace follows Jinja's trim_blocks + lstrip_blocks (DESIGN §4): a line holding only control
 * tags vanishes whole; an interpolation never eats the newline after it.
 */
import vm from 'node:vm';
import { inputError, type SourcePos } from '../lib/errors.ts';
import { LineIndex } from '../lib/positions.ts';
import { sandboxOf, type JobResult, type RenderJob, type TemplateSandbox } from './sandbox.ts';

type TagKind = 'exec' | 'interpolate' | 'raw';

interface TextToken {
  kind: 'text';
  start: number;
  end: number;
}
interface TagToken {
  kind: 'tag';
  tag: TagKind;
  start: number;
  end: number;
  codeStart: number;
  codeEnd: number;
  trimLeft?: '-' | '_';
  trimRight?: '-' | '_';
}
type Token = TextToken | TagToken;

/** One contiguous piece of output: literal text (1:1 with the source) or the value of a tag. */
interface Piece {
  kind: 'literal' | 'value' | 'code';
  srcStart: number;
  text: string;
}

export interface RenderResult {
  text: string;
  /** Maps an offset in `text` to an offset in the template source. */
  sourceOffset(outputOffset: number): number;
  /**
   * A text that is the same for two ranges of output (of this template) exactly when
   * `sourceOffset` maps them alike, offset for offset from `from` through `to`: what lets a part
   * parsed from one render stand for the same text in another (catalog/compile.ts).
   */
  signature(from: number, to: number): string;
}

export interface CompiledTemplate {
  file: string;
  source: string;
  lines: LineIndex;
  /** True when the source has no tags at all: rendering is the identity. */
  isStatic: boolean;
  /** Renders in `sandbox` (by default the one the compile put on `it`, else a new one). */
  render(it: unknown, sandbox?: TemplateSandbox): RenderResult;
  /** The render of `it` as one job of a sandbox's batch (for a template that is not static)… */
  job(it: unknown): RenderJob;
  /** …and its result read back: the text, or the input error with its position. */
  finish(result: JobResult, timeout: number): RenderResult;
  /** The text with every tag evaluated as nothing: used to discover a file's structure. */
  skeleton(): RenderResult;
  pos(offset: number): SourcePos;
}

const OPEN = /<%([-_])?\s*([=~])?\s*/g;
const CLOSE = /'|"|`|\/\*|(\s*([-_])?%>)/g;
const SINGLE = /'(?:\\[\s\w"'\\`]|[^\n\r'\\])*?'/g;
const DOUBLE = /"(?:\\[\s\w"'\\`]|[^\n\r"\\])*?"/g;
const TEMPLATE_LITERAL = /`(?:\\[\s\S]|\${(?:[^{}]|{(?:[^{}]|{[^}]*})*})*}|(?!\${)[^\\`])*`/g;

function tokenize(source: string, pos: (offset: number) => SourcePos): Token[] {
  const tokens: Token[] = [];
  let last = 0;
  OPEN.lastIndex = 0;
  let open: RegExpExecArray | null;
  while ((open = OPEN.exec(source))) {
    if (open.index > last) tokens.push({ kind: 'text', start: last, end: open.index });
    const codeStart = open.index + open[0].length;
    CLOSE.lastIndex = codeStart;
    let close: RegExpExecArray | null;
    let closed = false;
    while ((close = CLOSE.exec(source))) {
      if (close[1] !== undefined) {
        const prefix = open[2];
        tokens.push({
          kind: 'tag',
          tag: prefix === '=' ? 'interpolate' : prefix === '~' ? 'raw' : 'exec',
          start: open.index,
          end: CLOSE.lastIndex,
          codeStart,
          codeEnd: close.index,
          trimLeft: open[1] as TagToken['trimLeft'],
          trimRight: close[2] as TagToken['trimRight'],
        });
        last = CLOSE.lastIndex;
        OPEN.lastIndex = last;
        closed = true;
        break;
      }
      const quote = close[0];
      if (quote === '/*') {
        const end = source.indexOf('*/', CLOSE.lastIndex);
        if (end < 0) throw inputError('template: unclosed comment inside a tag', pos(close.index));
        CLOSE.lastIndex = end + 2;
        continue;
      }
      const re = quote === "'" ? SINGLE : quote === '"' ? DOUBLE : TEMPLATE_LITERAL;
      re.lastIndex = close.index;
      const m = re.exec(source);
      if (!m || m.index !== close.index) {
        throw inputError('template: unclosed string inside a tag', pos(close.index));
      }
      CLOSE.lastIndex = re.lastIndex;
    }
    if (!closed) {
      throw inputError("template: tag opened with '<%' is never closed with '%>'", {
        ...pos(open.index),
        length: 2,
      });
    }
  }
  if (last < source.length) tokens.push({ kind: 'text', start: last, end: source.length });
  return tokens;
}

/** Marks the characters that whitespace control removes from the output. */
function removedWhitespace(source: string, tokens: Token[]): Uint8Array {
  const removed = new Uint8Array(source.length);
  const isBlank = (c: string | undefined) => c === ' ' || c === '\t' || c === '\r';

  // Lines that hold only control tags vanish whole (trim_blocks + lstrip_blocks).
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind !== 'tag' || t.tag !== 'exec') continue;
    let lineStart = t.start;
    while (lineStart > 0 && source[lineStart - 1] !== '\n') lineStart--;
    let lineEnd = t.end;
    while (lineEnd < source.length && source[lineEnd] !== '\n') lineEnd++;
    const onlyControl = tokens.every((o) => {
      if (o.end <= lineStart || o.start >= lineEnd) return true;
      if (o.kind === 'tag') return o.tag === 'exec';
      const from = Math.max(o.start, lineStart);
      const to = Math.min(o.end, lineEnd);
      for (let k = from; k < to; k++) if (!isBlank(source[k])) return false;
      return true;
    });
    if (!onlyControl) continue;
    for (let k = lineStart; k < lineEnd; k++) removed[k] = 1;
    if (lineEnd < source.length) removed[lineEnd] = 1;
  }

  // Eta's explicit modifiers: '-' trims one newline, '_' all whitespace, on that side of the tag.
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind !== 'tag') continue;
    if (t.trimLeft) {
      let k = t.start - 1;
      if (t.trimLeft === '_') while (k >= 0 && /\s/.test(source[k]!)) removed[k--] = 1;
      else {
        while (k >= 0 && isBlank(source[k])) k--;
        if (source[k] === '\n') {
          for (let j = k; j < t.start; j++) removed[j] = 1;
          if (source[k - 1] === '\r') removed[k - 1] = 1;
        }
      }
    }
    if (t.trimRight) {
      let k = t.end;
      if (t.trimRight === '_') while (k < source.length && /\s/.test(source[k]!)) removed[k++] = 1;
      else {
        while (k < source.length && isBlank(source[k])) k++;
        if (source[k] === '\n') for (let j = t.end; j <= k; j++) removed[j] = 1;
      }
    }
  }
  return removed;
}

function toPieces(source: string, tokens: Token[], removed: Uint8Array): Piece[] {
  const pieces: Piece[] = [];
  for (const t of tokens) {
    if (t.kind === 'tag') {
      const code = source.slice(t.codeStart, t.codeEnd);
      pieces.push({ kind: t.tag === 'exec' ? 'code' : 'value', srcStart: t.codeStart, text: code });
      continue;
    }
    let runStart = -1;
    for (let k = t.start; k <= t.end; k++) {
      const keep = k < t.end && !removed[k];
      if (keep && runStart < 0) runStart = k;
      if (!keep && runStart >= 0) {
        pieces.push({ kind: 'literal', srcStart: runStart, text: source.slice(runStart, k) });
        runStart = -1;
      }
    }
  }
  return pieces;
}

interface Generated {
  /** `(function (it, out, at, __str) { … })`: evaluated in a template sandbox, never in Cairn's realm. */
  script: vm.Script;
}

/** Line and caret column (both 1-based) that V8 puts at the top of a SyntaxError's stack. */
function syntaxErrorAt(err: unknown): { line: number; col: number } | undefined {
  const lines = ((err as Error).stack ?? '').split('\n');
  const m = /cairn-template:(\d+)/.exec(lines[0] ?? '');
  const caret = lines[2]?.indexOf('^') ?? -1;
  return m ? { line: Number(m[1]), col: caret >= 0 ? caret + 1 : 1 } : undefined;
}

/** Offset inside `text` of 1-based line `line`, column `col`. */
function offsetIn(text: string, line: number, col: number): number {
  let offset = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', offset);
    if (nl < 0) return text.length;
    offset = nl + 1;
  }
  return Math.min(offset + col - 1, text.length);
}

/** Each `<%= %>` expression must parse on its own: this gives messages about the user's code. */
function checkExpressions(pieces: Piece[], pos: (offset: number) => SourcePos): void {
  for (const p of pieces) {
    if (p.kind !== 'value') continue;
    try {
      new vm.Script(`(\n${p.text}\n)`, { filename: 'cairn-template' });
    } catch (err) {
      const at = syntaxErrorAt(err);
      const inside = at && at.line >= 2 && at.line <= p.text.split('\n').length + 1;
      const offset = inside ? offsetIn(p.text, at.line - 1, at.col) : p.text.trimEnd().length;
      const message = inside ? (err as Error).message : 'the expression is incomplete';
      throw inputError(`template syntax error in \`<%= ${p.text.trim()} %>\`: ${message}`, pos(p.srcStart + offset));
    }
  }
}

/**
 * The first `}` of the control tags that closes nothing, else the innermost `{` left open, as a
 * source offset. Braces inside strings, template literals and comments do not count; `${` in a
 * template literal opens an expression that its `}` closes.
 */
function unmatchedBrace(pieces: Piece[]): { brace: '{' | '}'; offset: number } | undefined {
  const open: number[] = [];
  // What each open brace was: a block (or object literal), or a template literal's `${`.
  const kinds: ('block' | 'interp')[] = [];
  for (const p of pieces) {
    if (p.kind !== 'code') continue;
    const t = p.text;
    let i = 0;
    // Inside a template literal whose `${…}` just closed: resume scanning its text.
    let inTemplate = false;
    while (i < t.length) {
      const c = t[i]!;
      if (inTemplate) {
        if (c === '\\') i += 2;
        else if (c === '`') { inTemplate = false; i++; }
        else if (c === '$' && t[i + 1] === '{') { open.push(p.srcStart + i); kinds.push('interp'); inTemplate = false; i += 2; }
        else i++;
        continue;
      }
      if (c === '/' && t[i + 1] === '/') {
        const nl = t.indexOf('\n', i);
        i = nl < 0 ? t.length : nl;
      } else if (c === '/' && t[i + 1] === '*') {
        const end = t.indexOf('*/', i + 2);
        i = end < 0 ? t.length : end + 2;
      } else if (c === "'" || c === '"') {
        i++;
        while (i < t.length && t[i] !== c && t[i] !== '\n') i += t[i] === '\\' ? 2 : 1;
        i++;
      } else if (c === '`') {
        inTemplate = true;
        i++;
      } else if (c === '{') {
        open.push(p.srcStart + i);
        kinds.push('block');
        i++;
      } else if (c === '}') {
        if (open.length === 0) return { brace: '}', offset: p.srcStart + i };
        open.pop();
        if (kinds.pop() === 'interp') inTemplate = true;
        i++;
      } else i++;
    }
  }
  return open.length ? { brace: '{', offset: open[open.length - 1]! } : undefined;
}

function statement(p: Piece, i: number, text: string): string {
  if (p.kind === 'literal') return `out.marks.push(out.text.length, ${i}); out.text += ${JSON.stringify(text)};`;
  return p.kind === 'value'
    ? `at.piece = ${i}; out.marks.push(out.text.length, ${i}); out.text += __str(\n${text}\n, ${i});`
    : `at.piece = ${i};\n${text}\n;`;
}

/** Generates one statement per piece, the user's code of each starting on a line of its own, so
 *  that a syntax error's line and column in the generated code lead back to the source. */
function generate(pieces: Piece[], pos: (offset: number) => SourcePos, file: string): Generated {
  checkExpressions(pieces, pos);
  const codeLine: number[] = [];
  const body: string[] = [];
  let line = 3;
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i]!;
    codeLine.push(p.kind === 'literal' ? -1 : line + 1);
    const stmt = statement(p, i, p.text);
    body.push(stmt);
    line += stmt.split('\n').length;
  }
  const assemble = (texts: string[]) => `(function (it, out, at, __str) {\n'use strict';\n${texts.join('\n')}\n})`;
  const code = assemble(body);
  let script: vm.Script;
  try {
    script = new vm.Script(code, { filename: 'cairn-template' });
  } catch (err) {
    const at = syntaxErrorAt(err) ?? { line, col: 1 };
    const message = (err as Error).message;
    const owner = pieces.findIndex((p, i) => codeLine[i]! >= 0 && at.line >= codeLine[i]! && at.line < codeLine[i]! + p.text.split('\n').length);
    if (owner >= 0) {
      const p = pieces[owner]!;
      throw inputError(`template syntax error: ${message}`, pos(p.srcStart + offsetIn(p.text, at.line - codeLine[owner]! + 1, at.col)));
    }
    // The error is in Cairn's own glue: a block the template opened and never closed, or closed
    // twice. The first brace in the file is rarely the culprit: match them to find the one that is.
    const unmatched = unmatchedBrace(pieces);
    const unclosed = unmatched ? unmatched.brace === '{' : at.line >= line;
    const hint = unclosed
      ? 'a block opened with { in a <% %> tag is never closed'
      : 'a } in a <% %> tag closes a block that was never opened';
    throw inputError(`template syntax error: ${hint}`, unmatched ? pos(unmatched.offset) : { file, line: 1, col: 1 });
  }
  refuseKeywords(pieces, body, assemble, pos);
  return { script };
}

/**
 * `import()` and `async` are refused where they are keywords: a dynamic import's failure is an
 * error object made by Node in Cairn's realm (whose constructors compile strings), and an async
 * function's promise outlives the render and its time limit. Each occurrence of the word is
 * written with an escape (`impor\u0074`), which is harmless in a string, comment or property
 * name and a syntax error only where the word is a keyword: the compiler decides, not a scan.
 */
function refuseKeywords(pieces: Piece[], body: string[], assemble: (texts: string[]) => string, pos: (offset: number) => SourcePos): void {
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i]!;
    if (p.kind === 'literal') continue;
    for (const word of ['import', 'async']) {
      for (let at = p.text.indexOf(word); at >= 0; at = p.text.indexOf(word, at + 1)) {
        const escaped = `${p.text.slice(0, at + word.length - 1)}\\u${word.charCodeAt(word.length - 1).toString(16).padStart(4, '0')}${p.text.slice(at + word.length)}`;
        const texts = [...body];
        texts[i] = statement(p, i, escaped);
        try {
          new vm.Script(assemble(texts), { filename: 'cairn-template' });
        } catch {
          throw inputError(word === 'import'
            ? 'template: `import` is not available in templates (they cannot load modules)'
            : 'template: `async` is not available in templates (a render is synchronous and has nothing to wait for)', { ...pos(p.srcStart + at), length: word.length });
        }
      }
    }
  }
}

function undefinedValue(piece: Piece, pos: (offset: number) => SourcePos) {
  return inputError(`template: \`${piece.text.trim()}\` is undefined`, pos(piece.srcStart),
    'check the name; a value that may be missing needs a default, e.g. `<%= it.vars.x ?? "default" %>`');
}

/**
 * The last mark at or before `outputOffset` (its pair's index), or -1: `marks` holds pairs
 * (output offset, piece index), in increasing output order.
 */
function markAt(marks: number[], outputOffset: number): number {
  let lo = 0;
  let hi = marks.length / 2 - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (marks[mid * 2]! <= outputOffset) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/**
 * `base` is where the template text starts in its file, for a template that is one string value
 * inside a larger document (inline states in cairn.yaml).
 */
export function compileTemplate(source: string, file: string, base?: SourcePos): CompiledTemplate {
  const lines = new LineIndex(source);
  const pos = (offset: number): SourcePos => {
    const at = lines.lineCol(offset);
    if (!base) return { file, ...at };
    return at.line === 1
      ? { file, line: base.line, col: base.col + at.col - 1 }
      : { file, line: base.line + at.line - 1, col: (base.indent ?? 0) + at.col };
  };
  const tokens = tokenize(source, pos);
  const isStatic = tokens.every((t) => t.kind === 'text');
  const pieces = toPieces(source, tokens, removedWhitespace(source, tokens));
  let generated: Generated | undefined;

  const mapper = (marks: number[]) => (outputOffset: number): number => {
    const found = markAt(marks, outputOffset);
    if (found < 0) return 0;
    const piece = pieces[marks[found * 2 + 1]!];
    // The template's own code can write to the marks: an index that names no piece maps to the start.
    if (!piece) return 0;
    if (piece.kind === 'literal') {
      return Math.min(piece.srcStart + (outputOffset - marks[found * 2]!), piece.srcStart + piece.text.length);
    }
    return piece.srcStart;
  };

  /** See RenderResult.signature: the mark in force at `from`, then every mark up to `to`, relative to `from`. */
  const signer = (marks: number[]) => (from: number, to: number): string => {
    const found = markAt(marks, from);
    let sig = found < 0 ? '-' : `${marks[found * 2 + 1]!}@${from - marks[found * 2]!}`;
    for (let m = found + 1; m * 2 < marks.length && marks[m * 2]! <= to; m++) sig += `,${marks[m * 2]! - from}:${marks[m * 2 + 1]!}`;
    return sig;
  };
  const identity: RenderResult = { text: source, sourceOffset: (o) => o, signature: (from) => `=${from}` };

  const job = (it: unknown): RenderJob => {
    generated ??= generate(pieces, pos, file);
    return { script: generated.script, it };
  };

  const outcome = (result: JobResult, timeout: number): RenderResult => {
    if ('text' in result) return { text: result.text, sourceOffset: mapper(result.marks), signature: signer(result.marks) };
    if ('undefined' in result) {
      const piece = pieces[result.undefined];
      if (piece) throw undefinedValue(piece, pos);
    }
    const piece = 'piece' in result ? pieces[result.piece] : undefined;
    const at = piece ? pos(piece.srcStart) : pos(0);
    if ('timeout' in result) {
      throw inputError(`template did not finish within ${timeout} s`, at,
        'a loop that never ends? The limit is `timeout` in cairn.yaml (seconds)');
    }
    throw inputError(`template error: ${'error' in result ? result.error : 'the template failed'}`, at);
  };

  return {
    file,
    source,
    lines,
    isStatic,
    pos,
    render(it: unknown, sandbox?: TemplateSandbox): RenderResult {
      if (isStatic) return identity;
      const box = sandbox ?? sandboxOf(it);
      return outcome(box.render([job(it)])[0]!, box.timeout);
    },
    job,
    finish: outcome,
    skeleton(): RenderResult {
      const out = { text: '', marks: [] as number[] };
      // A value tag stands as a placeholder so that `<%= k %>: v` still parses as a key.
      pieces.forEach((p, i) => {
        if (p.kind === 'code') return;
        out.marks.push(out.text.length, i);
        out.text += p.kind === 'literal' ? p.text : '_';
      });
      return { text: out.text, sourceOffset: mapper(out.marks), signature: signer(out.marks) };
    },
  };
}
