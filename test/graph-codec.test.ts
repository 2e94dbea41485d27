/**
 * The compiled run's wire format (src/graph/codec.ts): a run compiled by the real compiler, with
 * every field of its graph's nodes, edges and types set, comes back exactly; input it did not
 * write is refused with an error that says where.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';
import { buildCatalog } from '../src/catalog/catalog.ts';
import { compile } from '../src/catalog/compile.ts';
import { buildGraph, type GraphNode } from '../src/graph/build.ts';
import { CodecError, decodeCompiled, EDGE_KEYS, encodeCompiled, encodeForEngine, GRAPH_NODE_KEYS, type Compiled } from '../src/graph/codec.ts';
import { Diagnostics } from '../src/lib/errors.ts';
import { loadSite } from '../src/site/load.ts';

const SITE = resolve(import.meta.dirname, 'fixtures/sites/stages');
const FACTS = JSON.parse(readFileSync(resolve(import.meta.dirname, 'fixtures/facts-debian.json'), 'utf8')) as Record<string, unknown>;

/** The stages site (stages, a transition, every requisite, handlers, a deferred one) with the fields it leaves unset set by hand. */
async function compiled(): Promise<Compiled> {
  const d = new Diagnostics();
  const catalog = buildCatalog(await loadSite(SITE, d), d);
  d.throwIfAny();
  const run = compile(catalog, catalog.targets.get('h1')!, { facts: FACTS, cliVars: {} });
  const graph = buildGraph(run);
  const [first, second] = graph.nodes;
  first!.meta = { ...first!.meta, noop: true, provider: 'posix', tags: ['web'], id: first!.meta.id ?? 'first' };
  first!.declarations = [...first!.declarations, { invocation: 4, part: 0, pos: { file: 'states/web.yaml', line: 1, col: 1 } }];
  second!.reads = { paths: ['/etc/motd'], commands: true, content: true };
  delete second!.pos;
  second!.declarations = [{ invocation: second!.invocation, part: second!.part }];
  // An implicit requisite left out because it would have closed a cycle.
  graph.dropped = [{ from: first!.id, to: second!.id }];
  // In the order behaviourOf writes them, as a compiled graph has them.
  const [name, { changes }] = Object.entries(graph.types)[0]!;
  graph.types[name] = { name, changes, createAction: 'run', writeOnly: ['password'], sensitive: ['password'], inSync: { status: 'skipped', reason: 'test' }, needs: ['running-system', 'cairn'], attributeNeeds: { ensure: ['running-system'] }, overlap: 'paths-and-parents', shows: { prior_to: 'before' } };
  return { run, graph };
}

const roundTrip = (c: Compiled) => decodeCompiled(Buffer.from(encodeCompiled(c).join('')));

/** A field counts as exercised when some node has it at a value that travels (not the default the wire leaves out). */
function exercised(nodes: GraphNode[], key: keyof GraphNode): boolean {
  return nodes.some((n) => {
    switch (key) {
      case 'ref': return n.ref !== n.id;
      case 'lazy': case 'defer': return n[key];
      case 'meta': return JSON.stringify(n.meta) !== JSON.stringify({ noop: false, allow_reload: true, allow_rebuild: true, tags: [] });
      case 'declarations': return n.declarations.length > 1;
      default: return n[key] !== undefined;
    }
  });
}

test('a compiled run with every node, edge and type field set comes back deep-equal, keys in the same order', async () => {
  const c = await compiled();
  for (const key of GRAPH_NODE_KEYS) assert.ok(exercised(c.graph.nodes, key), `no node sets ${key}: the test no longer covers it`);
  for (const key of EDGE_KEYS) assert.ok(c.graph.edges.some((e) => e[key] !== undefined), `no edge sets ${key}`);
  assert.ok(c.graph.nodes.some((n) => n.stage) && c.graph.nodes.some((n) => n.lazy && n.defer));

  const back = roundTrip(c);
  assert.deepStrictEqual(back.graph, c.graph);
  assert.deepStrictEqual(back.run, c.run);
  // `show --json` prints what the cache gives back: the same text, key for key.
  assert.equal(JSON.stringify(roundTrip(c)), JSON.stringify(c));
});

test('a decoded run encoded again sends its unread invocations line as it came; once they are read or replaced, as they are then', async () => {
  const c = await compiled();
  const text = encodeCompiled(c).join('');
  const line2 = text.slice(text.indexOf('\n') + 1);
  // Marked so that only the text it came in can carry it: parsing and writing again would lose the spaces.
  const spaced = `${text.slice(0, text.indexOf('\n') + 1)}${line2.replace(/^\[/, '[ ')}`;
  assert.notEqual(spaced, text);
  const untouched = decodeCompiled(Buffer.from(spaced));
  assert.equal(encodeCompiled(untouched).join(''), spaced);
  assert.deepStrictEqual(decodeCompiled(encodeCompiled(untouched).join('')).run.invocations, c.run.invocations);

  const read = decodeCompiled(Buffer.from(spaced));
  assert.deepStrictEqual(read.run.invocations, c.run.invocations);
  assert.equal(encodeCompiled(read).join(''), text);

  const replaced = decodeCompiled(Buffer.from(spaced));
  replaced.run.invocations = c.run.invocations.slice(0, 1);
  assert.deepStrictEqual(decodeCompiled(encodeCompiled(replaced).join('')).run.invocations, c.run.invocations.slice(0, 1));
});

test('a decoded run encoded again sends its graph line as it came while its graph and header are those it decoded to; a header field or the graph replaced, written anew', async () => {
  const c = await compiled();
  const text = encodeCompiled(c).join('');
  const newline = text.indexOf('\n');
  // Marked as above: only the text it came in has a space after its opening brace.
  const spaced = `{ ${text.slice(1)}`;
  const untouched = decodeCompiled(Buffer.from(spaced));
  assert.equal(encodeCompiled(untouched).join(''), spaced);

  const newFacts = decodeCompiled(Buffer.from(spaced));
  newFacts.run.facts = { ...newFacts.run.facts, changed: true };
  const again = decodeCompiled(encodeCompiled(newFacts).join(''));
  assert.equal(encodeCompiled(newFacts).join('').slice(0, 2), '{"');
  assert.deepStrictEqual(again.run.facts, { ...c.run.facts, changed: true });
  assert.deepStrictEqual(again.graph, c.graph);

  const newGraph = decodeCompiled(Buffer.from(spaced));
  const fewer: Compiled = { run: newGraph.run, graph: { ...newGraph.graph, dropped: [] } };
  const written = encodeCompiled(fewer).join('');
  assert.equal(written.slice(0, 2), '{"');
  assert.deepStrictEqual(decodeCompiled(written).graph.dropped, []);
  assert.equal(written.slice(written.indexOf('\n') + 1), text.slice(newline + 1));
});

test('the form an engine runs (encodeForEngine, what an agent is sent) is the graph and header line as written, with no invocations', async () => {
  const c = await compiled();
  assert.ok(c.run.invocations.length > 0);
  const text = encodeCompiled(c).join('');
  const forEngine = encodeForEngine(c);
  assert.equal(forEngine, `${text.slice(0, text.indexOf('\n'))}\n[]`);
  const back = decodeCompiled(forEngine);
  assert.deepStrictEqual(back.graph, c.graph);
  assert.deepStrictEqual({ ...back.run, invocations: c.run.invocations }, c.run);
  assert.deepStrictEqual(back.run.invocations, []);
  // From a decoded run too (the CLI's cached one): its invocations are never read to write it.
  const cached = decodeCompiled(text);
  assert.equal(encodeForEngine(cached), forEngine);
});

test('a node that uses the compact form (ref as id, usual meta, itself as its declaration) comes back whole', async () => {
  const { run, graph } = await compiled();
  const plain = graph.nodes.find((n) => n.ref === n.id && !n.lazy && n.declarations.length === 1 && n.pos && !n.meta.noop)!;
  assert.ok(plain);
  const back = roundTrip({ run, graph }).graph.nodes.find((n) => n.id === plain.id)!;
  assert.deepStrictEqual(back, plain);
  assert.equal(back.declarations[0]!.pos, back.pos, 'the declaration shares the node\'s pos, as the builder does');
});

test('nodes at the same source position share one decoded position object; a position with a field SourcePos lacks keeps its own; the graph comes back deep-equal', async () => {
  const c = await compiled();
  const [a, b, odd] = c.graph.nodes.filter((n) => n.pos && n.declarations.length === 1);
  assert.ok(a && b && odd, 'three nodes declared once with a position');
  b.pos = { ...a.pos! };
  b.declarations = [{ invocation: b.invocation, part: b.part, pos: b.pos }];
  odd.pos = { ...a.pos!, extra: 1 } as never;
  odd.declarations = [{ invocation: odd.invocation, part: odd.part, pos: odd.pos }];
  const back = roundTrip(c).graph;
  assert.deepStrictEqual(back.nodes, c.graph.nodes);
  const [backA, backB, backOdd] = [a, b, odd].map((n) => back.nodes.find((m) => m.id === n.id)!);
  assert.equal(backB!.pos, backA!.pos, 'one object for the one position');
  assert.equal(backB!.declarations[0]!.pos, backA!.pos, 'the declaration shares it too');
  assert.notEqual(backOdd!.pos, backA!.pos);
  assert.deepStrictEqual(backOdd!.pos, { ...a.pos!, extra: 1 });
});

test('edges and the run order name nodes by index, a node reading its first attribute\'s path says so with `true`, and both come back as the nodes\' own ids and paths', async () => {
  const c = await compiled();
  const wire = JSON.parse(encodeCompiled(c)[0]!) as { graph: { nodes: { reads?: unknown }[]; edges: { from: unknown; to: unknown }[]; order: unknown[] } };
  assert.ok(wire.graph.edges.length > 0 && wire.graph.edges.every((e) => typeof e.from === 'number' && typeof e.to === 'number'), 'every edge by index');
  assert.ok(wire.graph.order.every((v) => typeof v === 'number'), 'the order by index');
  const derived = wire.graph.nodes.findIndex((n) => n.reads === true);
  assert.ok(derived >= 0, 'some node reads the path of its first attribute');
  const back = decodeCompiled(Buffer.from(encodeCompiled(c).join('')));
  assert.deepStrictEqual(back.graph.nodes[derived]!.reads, c.graph.nodes[derived]!.reads);
  assert.deepStrictEqual(back.graph.edges, c.graph.edges);
  assert.deepStrictEqual(back.graph.order, c.graph.order);
  // An id that is no node's (no edge has one today) travels as itself.
  const stray = structuredClone(c);
  stray.graph.edges[0]!.to = 'file:/nowhere';
  assert.equal(roundTrip(stray).graph.edges[0]!.to, 'file:/nowhere');
});

test('a field the codec does not know is refused, not dropped', async () => {
  const c = await compiled();
  (c.graph.nodes[0] as unknown as Record<string, unknown>).priority = 3;
  assert.throws(() => encodeCompiled(c), /graph\.nodes\[0\]: unknown field 'priority'/);

  const d = await compiled();
  (d.graph.edges[0] as unknown as Record<string, unknown>).weight = 1;
  assert.throws(() => encodeCompiled(d), /graph\.edges\[0\]: unknown field 'weight'/);

  const e = await compiled();
  Object.values(e.graph.types)[0]!.reads = () => ({ paths: [] });
  assert.throws(() => encodeCompiled(e), (err: Error) => err instanceof CodecError && /reads\(\) is code/.test(err.message));
});

test('malformed input throws a CodecError that says where', async () => {
  const good = encodeCompiled(await compiled());
  const [line1, , line2] = good as [string, string, string];
  const first = () => JSON.parse(line1) as { keys: string[]; head: Record<string, unknown>; graph: { nodes: Record<string, unknown>[]; edges: Record<string, unknown>[] } };
  const decode = (l1: unknown, l2 = line2) => decodeCompiled(`${typeof l1 === 'string' ? l1 : JSON.stringify(l1)}\n${l2}`);
  const refused = (fn: () => unknown, message: RegExp) => assert.throws(fn, (err: Error) => {
    assert.ok(err instanceof CodecError, `${err.name}: ${err.message}`);
    assert.match(err.message, /^malformed compiled run: /);
    assert.match(err.message, message);
    return true;
  });

  refused(() => decodeCompiled('{}'), /expected two lines/);
  refused(() => decode('{"keys": ['), /line 1: not JSON/);
  refused(() => decode('[]'), /line 1: expected an object, found an array/);

  const noType = first();
  delete noType.graph.nodes[2]!.type;
  refused(() => decode(noType), /graph\.nodes\[2\]\.type: missing/);

  const badInvocation = first();
  badInvocation.graph.nodes[0]!.invocation = 'zero';
  refused(() => decode(badInvocation), /graph\.nodes\[0\]\.invocation: expected an integer, found string/);

  const extra = first();
  extra.graph.nodes[1]!.colour = 'red';
  refused(() => decode(extra), /graph\.nodes\[1\]: unknown field 'colour'/);

  const badEdge = first();
  badEdge.graph.edges[0]!.kind = 'requires';
  refused(() => decode(badEdge), /graph\.edges\[0\]\.kind: expected one of require, /);

  const noSuchNode = first();
  noSuchNode.graph.edges[0]!.to = noSuchNode.graph.nodes.length;
  refused(() => decode(noSuchNode), new RegExp(`graph\\.edges\\[0\\]\\.to: no node ${noSuchNode.graph.nodes.length}`));

  const noTarget = first();
  noTarget.keys = noTarget.keys.filter((k) => k !== 'target');
  refused(() => decode(noTarget), /run\.target: missing/);

  const badVersion = first();
  badVersion.head.version = 2;
  refused(() => decode(badVersion), /run\.version: expected version 1, found 2/);

  // The invocations are parsed when first read: malformed ones are refused then.
  const lazy = decode(line1, '{"not": "a list"}');
  refused(() => lazy.run.invocations, /run\.invocations: expected an array/);
  refused(() => decode(line1, '[').run.invocations, /line 2: not JSON/);
});
