/** Bad-input cases: a site (path → content), extra CLI args, and what stderr must say. */
export interface BadInputCase {
  name: string;
  files: Record<string, string>;
  args?: string[];
  /** `at` is `file:line:col` exactly as printed after `-->`; `message` must match stderr. */
  expect: { at?: string; message: RegExp }[];
}

/** A cairn.yaml with one local target running `states`. */
const site = (run: string, extra = '') => `targets:\n  t1:\n    executor: local\n    run: [${run}]\n${extra}`;

export const badInputCases: BadInputCase[] = [
  {
    name: 'YAML syntax error in cairn.yaml',
    files: { 'cairn.yaml': 'targets:\n  t1: {executor: local\n' },
    expect: [{ at: 'cairn.yaml:3:1', message: /YAML: / }],
  },
  {
    name: 'YAML syntax error in a templated state file points into the source',
    files: {
      'cairn.yaml': site('s'),
      'states/s.yaml': 's:\n  - file: /tmp/<%= it.target.name %>\n    content: x\n   mode: "0644"\n',
    },
    expect: [{ at: 'states/s.yaml:4:1', message: /YAML: Sequence item without - indicator/ }],
  },
  {
    name: 'unknown attribute with the nearest valid name',
    files: { 'cairn.yaml': site('s'), 'states/s.yaml': 's:\n  - file: /tmp/x\n    contnet: hi\n' },
    expect: [{ at: 'states/s.yaml:3:5', message: /unknown attribute 'contnet' \(did you mean 'content'\?\)/ }],
  },
  {
    name: 'unknown resource type with the nearest type',
    files: { 'cairn.yaml': site('s'), 'states/s.yaml': 's:\n  - fiel: /tmp/x\n' },
    expect: [{ at: 'states/s.yaml:2:5', message: /unknown resource type 'fiel' \(did you mean 'file'\?\)/ }],
  },
  {
    name: 'template expression that is undefined',
    files: { 'cairn.yaml': site('s'), 'states/s.yaml': 's:\n  - file: /tmp/x\n    content: <%= it.vars.nope %>\n' },
    expect: [{ at: 'states/s.yaml:3:18', message: /`it\.vars\.nope` is undefined/ }],
  },
  {
    name: 'dangling reference',
    files: { 'cairn.yaml': site('s'), 'states/s.yaml': 's:\n  - file: /tmp/x\n    require: file:/tmp/y\n' },
    expect: [{ at: 'states/s.yaml:3:14', message: /require 'file:\/tmp\/y' matches no node/ }],
  },
  {
    name: 'cycle printed as a path with positions',
    files: {
      'cairn.yaml': site('s'),
      'states/s.yaml': 's:\n  - file: /tmp/a\n    require: file:/tmp/b\n  - file: /tmp/b\n    require: file:/tmp/a\n',
    },
    expect: [{ message: /dependency cycle: file:\/tmp\/\w \(states\/s\.yaml:\d+:5\) --require--> file:\/tmp\/\w \(states\/s\.yaml:\d+:5\) --require--> file:\/tmp\/\w/ }],
  },
  {
    name: 'missing required parameter',
    files: {
      'cairn.yaml': site('s'),
      'states/s.yaml': 's:\n  params: { domain: ~ }\n  parts:\n    - file: /tmp/<%= it.params.domain %>\n',
    },
    expect: [{ at: 'cairn.yaml:4:11', message: /state 's' needs parameter 'domain'/ }],
  },
  {
    name: 'unknown state in a run list',
    files: { 'cairn.yaml': site('bse'), 'states/s.yaml': 'base:\n  - file: /tmp/x\n' },
    expect: [{ at: 'cairn.yaml:4:11', message: /unknown state 'bse' \(did you mean 'base'\?\)/ }],
  },
  {
    name: 'conflicting declarations inside one invocation',
    files: {
      'cairn.yaml': site('s'),
      'states/s.yaml': 's:\n  - file: /tmp/x\n    content: a\n  - file: /tmp/x\n    content: b\n',
    },
    expect: [{ at: 'states/s.yaml:4:5', message: /conflicting declarations of file:\/tmp\/x/ }],
  },
];
