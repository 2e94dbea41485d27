/**
 * Imports between src/ files point one way: no file-level cycle, and no import from a lower
 * top-level folder to a higher one (DESIGN.md §2). Within one folder imports are free but for
 * cycles.
 *
 * Type-only imports count like any other. They vanish at run time, but they still say that one
 * module is written in terms of another: a type that a lower folder has to borrow from a higher
 * one belongs in the lower folder, and a cycle through types is a cycle a reader has to untangle
 * all the same.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';

const SRC = resolve(import.meta.dirname, '../src');

/** The top-level folders of src/, highest first: a folder may import only from itself and those after it. */
const RANKING = ['ui', 'cli', 'daemon', 'export', 'provision', 'engine', 'graph', 'catalog', 'site', 'api', 'resources', 'executors', 'store', 'lib'];

interface Edge {
  from: string;
  to: string;
  line: number;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (entry.name.endsWith('.ts')) out.push(path);
  }
  return out.sort();
}

/** Every relative module specifier `file` names, parsed rather than matched so comments and strings never count. */
function importsOf(file: string): { specifier: string; line: number }[] {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: { specifier: string; line: number }[] = [];
  const add = (node: ts.Node, literal: ts.Node | undefined) => {
    if (literal && ts.isStringLiteralLike(literal) && literal.text.startsWith('.')) {
      found.push({ specifier: literal.text, line: source.getLineAndCharacterOfPosition(node.getStart()).line + 1 });
    }
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) add(node, node.moduleSpecifier);
    else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) add(node, node.arguments[0]);
    else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) add(node, node.argument.literal);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) add(node, node.moduleReference.expression);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

const rel = (path: string) => relative(SRC, path).split(sep).join('/');
const topFolder = (relPath: string) => (relPath.includes('/') ? relPath.slice(0, relPath.indexOf('/')) : '');

const files = sourceFiles(SRC).map(rel);
const edges: Edge[] = [];
const unresolved: string[] = [];
for (const file of files) {
  for (const { specifier, line } of importsOf(join(SRC, file))) {
    const to = rel(resolve(dirname(join(SRC, file)), specifier));
    // The package's own manifest (its version) is data below every folder, not a layer.
    if (to === '../package.json') continue;
    if (!files.includes(to)) unresolved.push(`src/${file}:${line} imports '${specifier}', which is no .ts file under src/`);
    else edges.push({ from: file, to, line });
  }
}

test('the import scan sees the code base', () => {
  assert.ok(files.length > 50, `only ${files.length} files found under ${SRC}`);
  assert.ok(edges.length > 100, `only ${edges.length} relative imports found`);
  assert.deepEqual(unresolved, []);
});

test('every top-level folder of src/ is ranked', () => {
  const folders = [...new Set(files.map(topFolder))];
  const loose = files.filter((f) => topFolder(f) === '');
  assert.deepEqual(loose, [], 'files directly in src/ have no rank: put them in a folder');
  const unranked = folders.filter((f) => f !== '' && !RANKING.includes(f));
  assert.deepEqual(unranked, [], `src/ folders missing from RANKING in test/imports.test.ts: ${unranked.join(', ')} (add each where it belongs, highest first)`);
});

test('no import points from a lower folder to a higher one', () => {
  const rank = (file: string) => RANKING.indexOf(topFolder(file));
  const upward = edges
    .filter((e) => rank(e.from) >= 0 && rank(e.to) >= 0 && rank(e.to) < rank(e.from))
    .map((e) => `src/${e.from}:${e.line} → src/${e.to} (${topFolder(e.from)}/ is below ${topFolder(e.to)}/)`);
  assert.deepEqual(upward, []);
});

test('no file-level import cycle', () => {
  const next = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const e of edges) if (!next.get(e.from)!.includes(e.to)) next.get(e.from)!.push(e.to);

  // Depth-first search: an edge back to a file still on the stack closes a cycle. Every cycle
  // has such an edge, so none goes unnoticed, though a knot of several may print as fewer paths.
  // Each path starts at its first file in sorted order, so the output is stable between runs.
  const cycles = new Set<string>();
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const walk = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const to of next.get(file)!) {
      if (state.get(to) === 'open') {
        const loop = stack.slice(stack.indexOf(to));
        const start = loop.indexOf([...loop].sort()[0]!);
        const rotated = [...loop.slice(start), ...loop.slice(0, start)];
        cycles.add([...rotated, rotated[0]].map((f) => `src/${f}`).join(' → '));
      } else if (!state.has(to)) walk(to);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (!state.has(file)) walk(file);
  assert.deepEqual([...cycles].sort(), []);
});
