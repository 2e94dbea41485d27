/**
 * The site fuzzer's pieces (test/fuzz-sites.test.ts): a small valid site, a seeded PRNG, and the
 * mutations it applies to the site's files (lines deleted, duplicated, swapped or re-indented,
 * characters changed, YAML specials inserted, dangling references, unknown attributes, …).
 *
 * Every path the site manages is written `<%= it.vars.root + '/…' %>`, one expression: a mutation
 * that stops it from printing leaves an empty or relative path (an input error), never `/…` at
 * the machine's root. The worker also compiles a mutated site before applying it and applies it
 * only when every node's path and the state_dir lie inside the case's folder.
 */

import { mulberry32 } from './random.ts';

/** Seeded choices over mulberry32: the same seed gives the same cases everywhere. */
export class Prng {
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }

  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

/** The valid site every case starts from; `caseDir` holds the target's managed tree and state. */
export function baseSite(caseDir: string): Record<string, string> {
  return {
    'cairn.yaml': [
      'targets:',
      '  t1:',
      '    executor: local',
      `    state_dir: ${caseDir}/state`,
      '    roles: [base]',
      '    vars:',
      '      greeting: hello',
      '    run:',
      '      - web',
      '      - site: { name: alpha, port: 8080 }',
      '      - site: { name: beta }',
      '',
    ].join('\n'),
    'roles/base.yaml': [
      'base:',
      '  vars:',
      '    owner_note: managed',
      '    ports: [80, 443]',
      '  run: [layout]',
      '',
    ].join('\n'),
    'vars/all.yaml': [
      'motd: "welcome"',
      'limits:',
      '  files: 1024',
      '  procs: 64',
      'anchors:',
      '  base: &base { a: 1, b: [x, y] }',
      '  copy: *base',
      '',
    ].join('\n'),
    'states/layout.yaml': [
      'layout:',
      "  - directory: <%= it.vars.root + '/etc' %>",
      '    mode: "0755"',
      "  - directory: <%= it.vars.root + '/srv' %>",
      "    require: directory:<%= it.vars.root + '/etc' %>",
      '',
    ].join('\n'),
    'states/web.yaml': [
      '<% const limit = it.vars.limits.files %>',
      'web:',
      "  - file: <%= it.vars.root + '/etc/motd' %>",
      '    content: "<%= it.vars.motd %> (<%= it.vars.greeting %>)\\n"',
      "    require: directory:<%= it.vars.root + '/etc' %>",
      '    notify: web-reload',
      "  - file: <%= it.vars.root + '/etc/limits.conf' %>",
      '    template: templates/limits.eta',
      '    mode: "0644"',
      '    id: limits',
      '<% if (limit > 100) { %>',
      "  - file: <%= it.vars.root + '/etc/big' %>",
      '    content: "<%= limit %>"',
      '    require: limits',
      '<% } %>',
      '',
      'web-reload:',
      '  lazy: true',
      '  parts:',
      "    - file: <%= it.vars.root + '/srv/reloaded' %>",
      '      content: "reloaded\\n"',
      '',
    ].join('\n'),
    'states/site.yaml': [
      'site:',
      '  params: { name: ~, port: 80 }',
      '  parts:',
      "    - file: <%= it.vars.root + '/srv/' + it.params.name + '.conf' %>",
      '      content: |',
      '        server <%= it.params.name %>',
      '        listen <%= it.params.port %>',
      "      require: directory:<%= it.vars.root + '/srv' %>",
      '',
    ].join('\n'),
    'templates/limits.eta': 'files <%= it.vars.limits.files %>\nprocs <%= it.vars.limits.procs %>\n<% for (const p of it.vars.ports) { %>port <%= p %>\n<% } %>',
  };
}

/** Text the fuzzer inserts: YAML indicators and tags, Eta tags, odd characters. */
const SPECIALS = [
  ': ', '- ', '-', '? ', '&a ', '*a', '*nosuch', '!!str ', '!!int ', '!!map ', '!secret ', '!nosuch ', '{', '}', '[', ']', '"', "'",
  '|', '>', '#', '%', '@', '`', ',', '\t', '\r', '\r\n', '\u0000', '\u00a0', '\ufeff', '---\n', '...\n', '<%', '%>', '<%=', '<%~ ',
  '~', 'null', 'true', '0x', '1e999', '"\\x"', '\\', '\n', '  ', '<<: *base\n', '!!binary ', '%YAML 1.1\n', '\u{1F600}',
];

/** Lines a mutation inserts: references that resolve to nothing, unknown attributes, odd parts. */
const LINES = [
  '    require: file:/nope',
  '    require: nosuch-state',
  '    notify: no-handler',
  '    before: directory:/nowhere',
  '    onchanges: limits',
  '    colour: red',
  '    provider: nosuch',
  '    mode: 0644',
  '    mode: [1, 2]',
  '    ensure: sideways',
  '    tags: [web, "bad tag"]',
  '    id: limits',
  '  - file: relative/path',
  '  - nosuchtype: x',
  '  - {}',
  '  -',
  '  - file: <%= it.vars.nosuch %>',
  '  - file: <%= it.params.nosuch %>',
  '<% throw new Error("boom") %>',
  '<% if (true) { %>',
  '<% } %>',
  '      - nosuch-state',
  '      - site: { name: gamma, nosuch: 1 }',
  '      - site: {}',
  '    state_dir: ""',
  '    executor: nosuch',
  'x: &x [a, *x]',
];

/** What a site file may be turned into instead of a plain file. */
export type FileKind = 'fifo' | 'folder' | 'link-out' | 'link-in' | 'link-dangling' | 'cr-only' | 'crlf' | 'bom' | 'empty';

/** In one case out of eight: one site file made something other than a plain LF text file. */
export function kindMutation(files: Record<string, string>, rng: Prng): { file: string; kind: FileKind } | undefined {
  if (rng.int(8) !== 0) return undefined;
  const kinds: FileKind[] = ['fifo', 'folder', 'link-out', 'link-in', 'link-dangling', 'cr-only', 'crlf', 'bom', 'empty'];
  return { file: rng.pick(Object.keys(files)), kind: rng.pick(kinds) };
}

export interface Mutation {
  file: string;
  what: string;
}

/** Applies 1–3 mutations to `files` (in place); returns what was done, for the failure message. */
export function mutate(files: Record<string, string>, rng: Prng): Mutation[] {
  const done: Mutation[] = [];
  const count = 1 + rng.int(3);
  for (let m = 0; m < count; m++) {
    const file = rng.pick(Object.keys(files));
    const text = files[file]!;
    const lines = text.split('\n');
    const at = rng.int(lines.length);
    let what: string;
    switch (rng.int(11)) {
      case 0:
        what = `delete line ${at + 1}`;
        lines.splice(at, 1);
        break;
      case 1:
        what = `duplicate line ${at + 1}`;
        lines.splice(at, 0, lines[at]!);
        break;
      case 2: {
        const other = Math.min(lines.length - 1, at + 1);
        what = `swap lines ${at + 1} and ${other + 1}`;
        [lines[at], lines[other]] = [lines[other]!, lines[at]!];
        break;
      }
      case 3: {
        const line = lines[at]!;
        const col = rng.int(line.length + 1);
        const ch = String.fromCharCode(32 + rng.int(95));
        what = `line ${at + 1} col ${col + 1}: set ${JSON.stringify(ch)}`;
        lines[at] = line.slice(0, col) + ch + line.slice(col + 1);
        break;
      }
      case 4:
      case 5: {
        const line = lines[at]!;
        const col = rng.int(line.length + 1);
        const special = rng.pick(SPECIALS);
        what = `line ${at + 1} col ${col + 1}: insert ${JSON.stringify(special)}`;
        lines[at] = line.slice(0, col) + special + line.slice(col);
        break;
      }
      case 6:
      case 7: {
        const line = rng.pick(LINES);
        what = `insert before line ${at + 1}: ${JSON.stringify(line)}`;
        lines.splice(at, 0, line);
        break;
      }
      case 8: {
        const delta = rng.pick([-2, -1, 1, 2, 4]);
        what = `line ${at + 1}: indent ${delta > 0 ? '+' : ''}${delta}`;
        lines[at] = delta > 0 ? ' '.repeat(delta) + lines[at]! : lines[at]!.replace(new RegExp(`^ {0,${-delta}}`), '');
        break;
      }
      case 9: {
        const cut = rng.int(text.length + 1);
        what = `truncate at byte ${cut}`;
        files[file] = text.slice(0, cut);
        done.push({ file, what });
        continue;
      }
      default: {
        // A value replaced by one of another type.
        const line = lines[at]!;
        const colon = line.indexOf(': ');
        const value = rng.pick(['[]', '{}', '~', '42', '"text"', '[a, [b]]', '{ a: { b: c } }', 'true', "''"]);
        what = `line ${at + 1}: value → ${value}`;
        lines[at] = colon >= 0 ? `${line.slice(0, colon + 2)}${value}` : `${line}: ${value}`;
      }
    }
    files[file] = lines.join('\n');
    done.push({ file, what });
  }
  return done;
}
