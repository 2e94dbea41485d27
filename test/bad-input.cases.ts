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

/** A state file `s` that is fine, for sites whose error is elsewhere. */
const okState = { 'states/s.yaml': 's:\n  - file: /tmp/x\n' };

/** A site whose state `s` is `body` (the lines under `s:`). */
const oneState = (body: string) => ({ 'cairn.yaml': site('s'), 'states/s.yaml': `s:\n${body}` });

/** A site whose state `s` renders `templates/nginx.conf.eta`, which holds `template`. */
const withTemplate = (template: string) => ({
  'cairn.yaml': site('s'),
  'states/s.yaml': 's:\n  - file: /etc/nginx.conf\n    template: templates/nginx.conf.eta\n',
  'templates/nginx.conf.eta': template,
});

/** A site running the TypeScript state `motd` from states/motd.ts. */
const tsState = (source: string) => ({ 'cairn.yaml': site('motd'), 'states/motd.ts': source });

export const badInputCases: BadInputCase[] = [
  // ── YAML and JSON syntax, in every kind of site file ──────────────────────────────────────────
  {
    name: 'YAML syntax error in cairn.yaml',
    files: { 'cairn.yaml': 'targets:\n  t1: {executor: local\n' },
    expect: [{ at: 'cairn.yaml:3:1', message: /YAML: / }],
  },
  {
    name: 'YAML duplicate key in cairn.yaml',
    files: { 'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    executor: ssh\n' },
    expect: [{ at: 'cairn.yaml:4:5', message: /YAML: Map keys must be unique/ }],
  },
  {
    name: 'YAML tab indentation in inventory.yaml',
    files: { 'cairn.yaml': 'name: demo\n', 'inventory.yaml': 'targets:\n\tt1: {executor: local}\n' },
    expect: [{ at: 'inventory.yaml:2:1', message: /YAML: Tabs are not allowed as indentation/ }],
  },
  {
    name: 'YAML duplicate key in a roles/*.yaml file',
    files: { 'cairn.yaml': site('s'), ...okState, 'roles/web.yaml': 'web:\n  run: [s]\n  vars: {a: 1}\n  run: [s]\n' },
    expect: [{ at: 'roles/web.yaml:4:3', message: /YAML: Map keys must be unique/ }],
  },
  {
    name: 'YAML unclosed flow map in vars/all.yaml',
    files: { 'cairn.yaml': site('s'), ...okState, 'vars/all.yaml': 'nginx: {port: 80\nmotd: hi\n' },
    expect: [{ at: 'vars/all.yaml:2:1', message: /YAML: Flow map .*end with a \}/ }],
  },
  {
    name: 'YAML duplicate key in vars/targets/<t>.yaml',
    files: { 'cairn.yaml': site('s'), ...okState, 'vars/targets/t1.yaml': 'motd: a\nmotd: b\n' },
    expect: [{ at: 'vars/targets/t1.yaml:2:1', message: /YAML: Map keys must be unique/ }],
  },
  {
    name: 'duplicate key in a JSON state file',
    files: { 'cairn.yaml': site('s'), 'states/s.json': '{\n  "s": [\n    {"file": "/tmp/x", "content": "a", "content": "b"}\n  ]\n}\n' },
    expect: [{ at: 'states/s.json:3:40', message: /Map keys must be unique/ }],
  },
  {
    name: 'YAML syntax error in a templated state file points into the source',
    files: {
      'cairn.yaml': site('s'),
      'states/s.yaml': 's:\n  - file: /tmp/<%= it.target.name %>\n    content: x\n   mode: "0644"\n',
    },
    expect: [{ at: 'states/s.yaml:4:4', message: /YAML: Sequence item without - indicator/ }],
  },
  {
    name: 'YAML duplicate key in a templated state file',
    files: oneState('  - file: /tmp/<%= it.target.name %>\n    mode: "0644"\n    mode: "0600"\n'),
    expect: [{ at: 'states/s.yaml:4:5', message: /YAML: Map keys must be unique/ }],
  },
  {
    name: 'YAML tab in a templated state file',
    files: oneState('  - file: /tmp/<%= it.target.name %>\n\t  mode: "0644"\n'),
    expect: [{ at: 'states/s.yaml:3:1', message: /YAML: Tabs are not allowed as indentation/ }],
  },
  {
    name: 'several YAML errors in several files are reported together',
    files: {
      'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    executor: ssh\n',
      'inventory.yaml': 'groups:\n\tg: {}\n',
      'vars/all.yaml': 'motd: a\nmotd: b\n',
    },
    expect: [
      { at: 'cairn.yaml:4:5', message: /Map keys must be unique/ },
      { at: 'inventory.yaml:2:1', message: /Tabs are not allowed as indentation/ },
      { at: 'vars/all.yaml:2:1', message: /Map keys must be unique/ },
      { message: /3 errors; nothing was run/ },
    ],
  },

  // ── Eta templates in YAML state files ─────────────────────────────────────────────────────────
  {
    name: 'template expression that is undefined',
    files: { 'cairn.yaml': site('s'), 'states/s.yaml': 's:\n  - file: /tmp/x\n    content: <%= it.vars.nope %>\n' },
    expect: [{ at: 'states/s.yaml:3:18', message: /`it\.vars\.nope` is undefined/ }],
  },
  {
    name: 'template tag never closed in a state file',
    files: oneState('  - file: /tmp/x\n    content: <%= it.target.name\n'),
    expect: [{ at: 'states/s.yaml:3:14', message: /tag opened with '<%' is never closed with '%>'/ }],
  },
  {
    name: 'JavaScript syntax error in a <%= %> tag of a state file',
    files: oneState('  - file: /tmp/x\n    content: <%= if (it.vars.tls) %>\n'),
    expect: [{ at: 'states/s.yaml:3:18', message: /template syntax error in `<%= if .*Unexpected token 'if'/ }],
  },
  {
    name: 'JavaScript syntax error in a <% %> tag of a state file',
    files: oneState('<% if (it.vars.tls) { %>\n  - file: /tmp/tls\n<% else { %>\n  - file: /tmp/plain\n<% } %>\n'),
    expect: [{ at: 'states/s.yaml:4:4', message: /template syntax error: Unexpected token 'else'/ }],
  },
  {
    name: 'TypeError in a state file expression',
    files: oneState('  - file: /tmp/x\n    content: <%= it.vars.nope.deep %>\n'),
    expect: [{ at: 'states/s.yaml:3:18', message: /template error: Cannot read properties of undefined \(reading 'deep'\)/ }],
  },
  {
    name: 'undefined variable (not under it.) in a state file',
    files: oneState('  - file: /tmp/x\n    content: <%= domain %>\n'),
    expect: [{ at: 'states/s.yaml:3:18', message: /template error: domain is not defined/ }],
  },
  {
    name: 'block opened with { in a state file and never closed',
    files: oneState('<% if (it.target.name) { %>\n  - file: /tmp/x\n'),
    expect: [{ at: 'states/s.yaml:2:24', message: /template syntax error: a block opened with \{ in a <% %> tag is never closed/ }],
  },
  {
    name: 'undefined expression in a state written inline in cairn.yaml',
    files: { 'cairn.yaml': site('s', 'states:\n  s:\n    - file: /tmp/x\n      content: a <%= it.vars.missing %>\n') },
    expect: [{ at: 'cairn.yaml:8:22', message: /`it\.vars\.missing` is undefined/ }],
  },

  {
    name: 'an unclosed { after well-formed blocks is reported at its own brace',
    files: oneState([
      '<% if (it.target.name) { %>',
      '  - file: /tmp/a',
      '<% } %>',
      '<% for (const n of ["b", "c"]) { %>',
      '  - file: /tmp/<%= n %>',
      '<% } %>',
      '<% if (it.target.name === "t1") { %>',
      '  - file: /tmp/d',
      '',
    ].join('\n')),
    expect: [{ at: 'states/s.yaml:8:33', message: /template syntax error: a block opened with \{ in a <% %> tag is never closed/ }],
  },
  {
    name: 'an extra } after well-formed blocks is reported at its own brace',
    files: oneState([
      '<% if (it.target.name) { %>',
      '  - file: /tmp/a',
      '<% } %>',
      '<% for (const n of ["b", "c"]) { %>',
      '  - file: /tmp/<%= n %>',
      '<% } %>',
      '  - file: /tmp/d',
      '<% if (true) { const s = "}"; /* } */ } } %>',
      '',
    ].join('\n')),
    expect: [{ at: 'states/s.yaml:9:41', message: /a \} in a <% %> tag closes a block that was never opened/ }],
  },

  // ── Eta errors in template files used by a `file` part: positions point into the template ─────
  {
    name: 'template file: tag never closed',
    files: withTemplate('user nginx;\nlisten <%= it.vars.port\n'),
    expect: [
      { at: 'templates/nginx.conf.eta:2:8', message: /tag opened with '<%' is never closed/ },
      { message: /note: rendered for file \/etc\/nginx\.conf at states\/s\.yaml:3:15/ },
    ],
  },
  {
    name: 'template file: JavaScript syntax error in a <%= %> tag',
    files: withTemplate('user nginx;\nlisten <%= if (it.vars.tls) 443 %>;\n'),
    expect: [{ at: 'templates/nginx.conf.eta:2:12', message: /template syntax error in `<%= if .*Unexpected token 'if'/ }],
  },
  {
    name: 'template file: JavaScript syntax error in a <% %> tag',
    files: withTemplate('user nginx;\n<% if (it.vars.tls) { %>\nlisten 443;\n<% else { %>\nlisten 80;\n<% } %>\n'),
    expect: [{ at: 'templates/nginx.conf.eta:4:4', message: /template syntax error: Unexpected token 'else'/ }],
  },
  {
    name: 'template file: TypeError in an expression',
    files: withTemplate('user nginx;\nlisten <%= it.vars.nginx.port %>;\n'),
    expect: [{ at: 'templates/nginx.conf.eta:2:12', message: /template error: Cannot read properties of undefined \(reading 'port'\)/ }],
  },
  {
    name: 'template file: undefined value',
    files: withTemplate('user nginx;\n  listen <%= it.vars.port %>;\n'),
    expect: [{ at: 'templates/nginx.conf.eta:2:14', message: /template: `it\.vars\.port` is undefined/ }],
  },
  {
    name: 'template file: block opened with { and never closed',
    files: withTemplate('user nginx;\n<% if (it.target.name) { %>\nlisten 80;\n'),
    expect: [{ at: 'templates/nginx.conf.eta:2:24', message: /template syntax error: a block opened with \{ in a <% %> tag is never closed/ }],
  },

  // ── Parts: resource types, attributes and meta attributes ─────────────────────────────────────
  {
    name: 'unknown attribute with the nearest valid name',
    files: { 'cairn.yaml': site('s'), 'states/s.yaml': 's:\n  - file: /tmp/x\n    contnet: hi\n' },
    expect: [
      { at: 'states/s.yaml:3:5', message: /unknown attribute 'contnet' \(did you mean 'content'\?\)/ },
      // source_base64 and content_sha256 are the file type's internal attributes: never offered.
      { message: /help: file takes: ensure, content, template, source, vars, mode, owner, group, backup, validate, sensitive\n/ },
    ],
  },
  {
    name: "an internal attribute (filled in by the type, never written) is not the site's to write",
    files: oneState('  - file: /tmp/x\n    source: motd\n    content_sha256: abc\n'),
    expect: [{ at: 'states/s.yaml:4:5', message: /file \/tmp\/x: unknown attribute 'content_sha256'/ }],
  },
  {
    name: "a file's validate command that does not name the file to check (no %)",
    files: oneState('  - file: /etc/sudoers.d/deploy\n    content: "deploy ALL=(ALL) NOPASSWD: ALL\\n"\n    validate: visudo -c\n'),
    expect: [{ at: 'states/s.yaml:4:15', message: /file \/etc\/sudoers\.d\/deploy: validate: a validate command names the file to check as %/ }],
  },
  {
    name: "a directory's source that is a file of the site, not a folder",
    files: { ...oneState('  - directory: /srv/www\n    source: files/index.html\n'), 'files/index.html': '<h1>hi</h1>\n' },
    expect: [{ at: 'states/s.yaml:3:13', message: /directory \/srv\/www: source 'files\/index\.html' is a file \(a directory's source is a folder of the site\)/ }],
  },
  {
    name: "a directory's source holding a template and the file it renders to",
    files: { ...oneState('  - directory: /srv/www\n    source: www\n    template: true\n'), 'www/app.conf': 'a\n', 'www/app.conf.eta': 'b\n' },
    expect: [{ at: 'states/s.yaml:3:13', message: /the site folder 'www' has both app\.conf and app\.conf\.eta, which are both app\.conf in the directory/ }],
  },
  {
    name: 'purge on a directory without a source',
    files: oneState('  - directory: /srv/www\n    purge: true\n'),
    expect: [{ at: 'states/s.yaml:2:5', message: /directory \/srv\/www: purge, template, file_mode and vars go with source/ }],
  },
  {
    name: 'unknown attribute of a directory',
    files: oneState('  - directory: /srv/www\n    mdoe: "0755"\n'),
    expect: [{ at: 'states/s.yaml:3:5', message: /directory \/srv\/www: unknown attribute 'mdoe' \(did you mean 'mode'\?\)/ }],
  },
  {
    name: 'unknown attribute of an exec',
    files: oneState('  - exec: make install\n    createz: /usr/local/bin/tool\n'),
    expect: [{ at: 'states/s.yaml:3:5', message: /exec make install: unknown attribute 'createz' \(did you mean 'creates'\?\)/ }],
  },
  {
    name: 'unknown attribute of a line',
    files: oneState('  - line: /etc/hosts\n    text: 10.0.0.1 db\n    matches: " db$"\n'),
    expect: [{ at: 'states/s.yaml:4:5', message: /line \/etc\/hosts: unknown attribute 'matches' \(did you mean 'match'\?\)/ }],
  },
  {
    name: 'unknown attribute of a symlink',
    files: oneState('  - symlink: /usr/bin/python\n    taget: /usr/bin/python3\n'),
    expect: [{ at: 'states/s.yaml:3:5', message: /symlink \/usr\/bin\/python: unknown attribute 'taget' \(did you mean 'target'\?\)/ }],
  },
  {
    name: 'unknown attribute of a service',
    files: oneState('  - service: nginx\n    enabled: true\n'),
    expect: [{ at: 'states/s.yaml:3:5', message: /service nginx: unknown attribute 'enabled' \(did you mean 'enable'\?\)/ }],
  },
  {
    name: 'unknown attribute of a package',
    files: oneState('  - package: nginx\n    versoin: "1.24"\n'),
    expect: [{ at: 'states/s.yaml:3:5', message: /package nginx: unknown attribute 'versoin' \(did you mean 'version'\?\)/ }],
  },
  {
    name: 'a package hold with ensure: latest',
    files: oneState('  - package: nginx\n    ensure: latest\n    hold: true\n'),
    expect: [{ at: 'states/s.yaml:4:11', message: /package nginx: hold: hold goes with ensure: present/ }],
  },
  // ── package_repository ─────────────────────────────────────────────────────────────────────────
  {
    name: 'unknown attribute of a package_repository',
    files: oneState('  - package_repository: example\n    uri: https://deb.example.org/debian\n    suits: bookworm\n'),
    expect: [{ at: 'states/s.yaml:4:5', message: /package_repository example: unknown attribute 'suits' \(did you mean 'suites'\?\)/ }],
  },
  {
    name: 'a package_repository key downloaded from a URL without key_sha256',
    files: oneState('  - package_repository: example\n    uri: https://deb.example.org/debian\n    suites: bookworm\n    key: https://deb.example.org/key.asc\n'),
    expect: [{ at: 'states/s.yaml:2:5', message: /package_repository example: key_sha256: is required\n[\s\S]*help: a key downloaded from a URL needs key_sha256/ }],
  },
  {
    name: 'a package_repository without uri',
    files: oneState('  - package_repository: example\n    suites: bookworm\n'),
    expect: [{ at: 'states/s.yaml:2:5', message: /package_repository example: uri: is required\n[\s\S]*help: uri is required \(where the repository is\)/ }],
  },
  {
    name: 'a package_repository key_sha256 that is no sha256',
    files: oneState('  - package_repository: example\n    uri: https://deb.example.org/debian\n    suites: bookworm\n    key: https://deb.example.org/key.asc\n    key_sha256: abc\n'),
    expect: [{ at: 'states/s.yaml:6:17', message: /package_repository example: .*a sha256 is 64 hex digits/ }],
  },
  {
    name: 'a package_repository key from a site file that is not there',
    files: oneState('  - package_repository: example\n    uri: https://deb.example.org/debian\n    suites: bookworm\n    key: keys/nope.asc\n'),
    expect: [{ at: 'states/s.yaml:5:10', message: /no such site file 'keys\/nope\.asc'/ }],
  },
  {
    name: 'a package_repository key file whose sha256 is not the key_sha256 given',
    files: {
      ...oneState(`  - package_repository: example\n    uri: https://deb.example.org/debian\n    suites: bookworm\n    key: keys/example.asc\n    key_sha256: ${'ab'.repeat(32)}\n`),
      'keys/example.asc': '-----BEGIN PGP PUBLIC KEY BLOCK-----\n',
    },
    expect: [{ at: 'states/s.yaml:6:17', message: /package_repository example: the key keys\/example\.asc has sha256 [0-9a-f]{64}, not the key_sha256 given/ }],
  },
  {
    name: 'a package_repository key URL of another scheme',
    files: oneState('  - package_repository: example\n    uri: https://deb.example.org/debian\n    suites: bookworm\n    key: ftp://deb.example.org/key.asc\n'),
    expect: [{ at: 'states/s.yaml:5:10', message: /package_repository example: .*a key URL is http:\/\/ or https:\/\// }],
  },
  {
    name: 'a flat package_repository with components',
    files: oneState('  - package_repository: example\n    uri: http://10.0.0.1/repo\n    suites: ./\n    components: main\n'),
    expect: [{ at: 'states/s.yaml:5:17', message: /package_repository example: .*a flat repository .* has no components/ }],
  },
  {
    name: 'mount: mounted without a device',
    files: oneState('  - mount: /mnt/x\n    fstype: tmpfs\n'),
    expect: [{ at: 'states/s.yaml:2:5', message: /mount \/mnt\/x: device: is required/ }],
  },
  {
    name: 'mount: an ensure that is not one of the four states',
    files: oneState('  - mount: /mnt/x\n    device: tmpfs\n    fstype: tmpfs\n    ensure: mount\n'),
    expect: [{ at: 'states/s.yaml:5:13', message: /mount \/mnt\/x: ensure: .*expected one of "mounted"\|"unmounted"\|"present"\|"absent"/ }],
  },
  {
    name: 'mount: options with a blank (fstab would split them)',
    files: oneState('  - mount: /mnt/x\n    device: tmpfs\n    fstype: tmpfs\n    options: size=1m, mode=0755\n'),
    expect: [{ at: 'states/s.yaml:5:14', message: /mount \/mnt\/x: options: options is one word with no blanks/ }],
  },
  {
    name: 'reboot: a when that is not notified or required',
    files: oneState('  - reboot: now\n    when: always\n'),
    expect: [{ at: 'states/s.yaml:3:11', message: /reboot now: when: .*expected one of "notified"\|"required"/ }],
  },
  {
    name: 'reboot: a misspelt timeout',
    files: oneState('  - reboot: now\n    timout: 30\n'),
    expect: [{ at: 'states/s.yaml:3:5', message: /reboot now: unknown attribute 'timout' \(did you mean 'timeout'\?\)/ }],
  },
  {
    name: 'reboot: a command given as one string, not an argument list',
    files: oneState('  - reboot: now\n    command: shutdown -r now\n'),
    expect: [{ at: 'states/s.yaml:3:14', message: /reboot now: command: expected array, received string/ }],
  },
  {
    name: 'meta attribute typo suggests the meta attribute',
    files: oneState('  - file: /tmp/x\n    requires: file:/tmp/y\n'),
    expect: [{ at: 'states/s.yaml:3:5', message: /file \/tmp\/x: unknown attribute 'requires' \(did you mean 'require'\?\)/ }],
  },
  {
    name: 'unknown resource type with the nearest type',
    files: { 'cairn.yaml': site('s'), 'states/s.yaml': 's:\n  - fiel: /tmp/x\n' },
    expect: [{ at: 'states/s.yaml:2:5', message: /unknown resource type 'fiel' \(did you mean 'file'\?\)/ }],
  },
  {
    name: 'a part whose first key is not a type, naming two types',
    files: oneState('  - id: x\n    file: /tmp/x\n    directory: /tmp/y\n'),
    expect: [{ at: 'states/s.yaml:4:5', message: /part names more than one resource type: file, directory/ }],
  },
  {
    name: 'a part naming two resource types',
    files: oneState('  - file: /tmp/x\n    directory: /tmp/y\n'),
    expect: [{ at: 'states/s.yaml:3:5', message: /file \/tmp\/x: 'directory' is not an attribute of file\n[\s\S]*help: a part declares one resource: start another part with `- directory: …`/ }],
  },
  {
    name: 'unknown attribute in a JSON state file',
    files: { 'cairn.yaml': site('s'), 'states/s.json': '{\n  "s": [\n    { "file": "/tmp/x", "mdoe": "0644" }\n  ]\n}\n' },
    expect: [{ at: 'states/s.json:3:25', message: /unknown attribute 'mdoe' \(did you mean 'mode'\?\)/ }],
  },
  {
    name: 'several errors in one state file are reported together',
    files: oneState('  - file: /tmp/x\n    contnet: a\n  - directory: /tmp/d\n    mode: 755\n  - servce: nginx\n'),
    expect: [
      { at: 'states/s.yaml:3:5', message: /unknown attribute 'contnet' \(did you mean 'content'\?\)/ },
      { at: 'states/s.yaml:5:11', message: /directory \/tmp\/d: mode: expected string, received number/ },
      { at: 'states/s.yaml:6:5', message: /unknown resource type 'servce' \(did you mean 'service'\?\)/ },
      { message: /3 errors; nothing was run/ },
    ],
  },

  // ── Attribute values checked by the types' schemas ────────────────────────────────────────────
  {
    name: 'file mode given as a number',
    files: oneState('  - file: /tmp/x\n    mode: 644\n'),
    expect: [{ at: 'states/s.yaml:3:11', message: /file \/tmp\/x: mode: expected string, received number/ }],
  },
  {
    name: 'ensure with a value the type does not know',
    files: oneState('  - file: /tmp/x\n    ensure: maybe\n'),
    expect: [{ at: 'states/s.yaml:3:13', message: /file \/tmp\/x: ensure: .*expected one of "present"\|"absent"/ }],
  },
  {
    name: 'symlink without a target',
    files: oneState('  - symlink: /usr/bin/python\n'),
    expect: [{ at: 'states/s.yaml:2:5', message: /symlink \/usr\/bin\/python: target: is required/ }],
  },
  {
    name: 'line whose match is not a valid regular expression',
    files: oneState('  - line: /etc/hosts\n    text: 10.0.0.1 db\n    match: "^(10"\n'),
    expect: [{ at: 'states/s.yaml:4:13', message: /line \/etc\/hosts: match: not a valid regular expression/ }],
  },
  {
    name: 'file with both content and template',
    files: { ...oneState('  - file: /tmp/x\n    content: a\n    template: templates/x.eta\n'), 'templates/x.eta': 'x\n' },
    expect: [{ at: 'states/s.yaml:2:5', message: /file \/tmp\/x: give only one of content, template and source/ }],
  },
  {
    name: 'file with a relative path',
    files: oneState('  - file: etc/motd\n'),
    expect: [{ at: 'states/s.yaml:2:11', message: /file etc\/motd: path: must be an absolute path/ }],
  },
  {
    name: 'exec with a negative timeout',
    files: oneState('  - exec: sleep 1\n    timeout: -5\n'),
    expect: [{ at: 'states/s.yaml:3:14', message: /exec sleep 1: timeout: Too small: expected number to be >0/ }],
  },

  // ── cairn.yaml, inventory, roles, groups and the state map ────────────────────────────────────
  {
    name: 'unknown top-level key in cairn.yaml',
    files: { 'cairn.yaml': site('s', 'tragets: {}\n'), ...okState },
    expect: [{ at: 'cairn.yaml:5:1', message: /unknown key 'tragets' \(did you mean 'targets'\?\)/ }],
  },
  {
    name: 'unknown key in a target',
    files: { 'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    hots: example.com\n    run: [s]\n', ...okState },
    expect: [{ at: 'cairn.yaml:4:5', message: /targets\.t1: unknown key 'hots' \(did you mean 'host'\?\)/ }],
  },
  {
    name: 'unknown key in a group',
    files: { 'cairn.yaml': site('s', 'groups:\n  g:\n    targets: [t1]\n    role: [base]\n'), ...okState },
    expect: [{ at: 'cairn.yaml:8:5', message: /groups\.g: unknown key 'role' \(did you mean 'roles'\?\)/ }],
  },
  {
    name: 'unknown key in a role file',
    files: { 'cairn.yaml': site('s'), ...okState, 'roles/base.yaml': 'base:\n  vars: {}\n  rn: [s]\n' },
    expect: [{ at: 'roles/base.yaml:3:3', message: /role 'base': unknown key 'rn' \(did you mean 'run'\?\)/ }],
  },
  {
    name: 'unknown key in the inventory',
    files: { 'cairn.yaml': 'name: demo\n', 'inventory.yaml': 'targets:\n  t1: {executor: local}\nroles: {}\n' },
    expect: [{ at: 'inventory.yaml:3:1', message: /unknown key 'roles'/ }],
  },
  {
    name: 'unknown key in a state map (part: instead of parts:)',
    files: oneState('  part:\n    - file: /tmp/x\n'),
    expect: [{ at: 'states/s.yaml:2:3', message: /state 's': unknown key 'part' \(did you mean 'parts'\?\)/ }],
  },
  {
    name: 'unknown key in component.yaml',
    files: { 'cairn.yaml': site('s'), ...okState, 'components/web/component.yaml': 'descripton: web server\n' },
    expect: [{ at: 'components/web/component.yaml:1:1', message: /unknown key 'descripton' \(did you mean 'description'\?\)/ }],
  },
  {
    name: 'group with both targets and match',
    files: { 'cairn.yaml': site('s', 'groups:\n  g:\n    targets: [t1]\n    match: "t*"\n'), ...okState },
    expect: [{ at: 'cairn.yaml:8:5', message: /group 'g': give either targets or match, not both/ }],
  },
  {
    name: 'group match that is not a valid /regex/',
    files: { 'cairn.yaml': site('s', 'groups:\n  g:\n    match: "/t(1/"\n'), ...okState },
    expect: [{ at: 'cairn.yaml:7:13', message: /group 'g': match is not a valid regular expression/ }],
  },
  {
    name: 'several site errors in cairn.yaml and the inventory are reported together',
    files: {
      'cairn.yaml': 'nmae: demo\ntargets:\n  t1:\n    executor: local\n    roles: [bsae]\n    run: [s]\nroles:\n  base: {}\n',
      'inventory.yaml': 'groups:\n  g: {targets: [t1], match: "t*"}\n',
      ...okState,
    },
    expect: [
      { at: 'cairn.yaml:1:1', message: /unknown key 'nmae' \(did you mean 'name'\?\)/ },
      { at: 'inventory.yaml:2:22', message: /group 'g': give either targets or match, not both/ },
      { at: 'cairn.yaml:5:13', message: /target 't1': unknown role 'bsae' \(did you mean 'base'\?\)/ },
      { message: /3 errors; nothing was run/ },
    ],
  },

  // ── Names: roles, states, vars files, declared twice ──────────────────────────────────────────
  {
    name: 'unknown state in a run list',
    files: { 'cairn.yaml': site('bse'), 'states/s.yaml': 'base:\n  - file: /tmp/x\n' },
    expect: [{ at: 'cairn.yaml:4:11', message: /unknown state 'bse' \(did you mean 'base'\?\)/ }],
  },
  {
    name: 'unknown states in a role run list',
    files: { 'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    roles: [base]\n', ...okState, 'roles/base.yaml': 'base:\n  run: [x, s2]\n' },
    expect: [
      { at: 'roles/base.yaml:2:9', message: /unknown state 'x' \(did you mean 's'\?\)/ },
      { at: 'roles/base.yaml:2:12', message: /unknown state 's2' \(did you mean 's'\?\)/ },
    ],
  },
  {
    name: 'unknown state with parameters in a group run list',
    files: { 'cairn.yaml': site('s', 'groups:\n  g:\n    targets: [t1]\n    run:\n      - z: { a: 1 }\n'), ...okState },
    expect: [{ at: 'cairn.yaml:9:9', message: /unknown state 'z' \(did you mean 's'\?\)/ }],
  },
  {
    name: 'unknown role from a target',
    files: { 'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    roles: [bse]\nroles:\n  base:\n    run: [s]\n', ...okState },
    expect: [{ at: 'cairn.yaml:4:13', message: /target 't1': unknown role 'bse' \(did you mean 'base'\?\)/ }],
  },
  {
    name: 'unknown role from a group',
    files: { 'cairn.yaml': site('s', 'groups:\n  g:\n    targets: [t1]\n    roles: [bsae]\nroles:\n  base: {}\n'), ...okState },
    expect: [{ at: 'cairn.yaml:8:13', message: /group 'g': unknown role 'bsae' \(did you mean 'base'\?\)/ }],
  },
  {
    name: 'include of an unknown state',
    files: { 'cairn.yaml': site('s'), 'states/s.yaml': 's:\n  include: [bsae]\nbase:\n  - file: /tmp/x\n' },
    expect: [{ at: 'states/s.yaml:2:13', message: /state 's': include of unknown state 'bsae' \(did you mean 'base'\?\)/ }],
  },
  {
    name: 'include cycle',
    files: { 'cairn.yaml': site('a'), 'states/s.yaml': 'a:\n  include: [b]\nb:\n  include: [a]\n' },
    expect: [{ at: 'states/s.yaml:4:13', message: /include cycle: a → b → a/ }],
  },
  {
    name: 'vars file for an unknown group',
    files: { 'cairn.yaml': site('s', 'groups:\n  web: {targets: [t1]}\n'), ...okState, 'vars/groups/wbe.yaml': 'a: 1\n' },
    expect: [{ at: 'vars/groups/wbe.yaml:1:1', message: /vars file for unknown group 'wbe' \(did you mean 'web'\?\)/ }],
  },
  {
    name: 'vars file for an unknown target',
    files: { 'cairn.yaml': site('s'), ...okState, 'vars/targets/t2.yaml': 'a: 1\n' },
    expect: [{ at: 'vars/targets/t2.yaml:1:1', message: /vars file for unknown target 't2' \(did you mean 't1'\?\)/ }],
  },
  {
    name: 'state declared in two files',
    files: { 'cairn.yaml': site('s'), 'states/a.yaml': 's:\n  - file: /tmp/x\n', 'states/b.yaml': 'other:\n  - file: /tmp/y\ns:\n  - file: /tmp/z\n' },
    expect: [{ at: 'states/b.yaml:3:1', message: /state 's' is declared twice\n(.*\n)* {2}note: first declared here at states\/a\.yaml:1:1/ }],
  },
  {
    name: 'target declared in cairn.yaml and in the inventory',
    files: { 'cairn.yaml': site('s'), ...okState, 'inventory.yaml': 'targets:\n  t0: {}\n  t1: {executor: local}\n' },
    expect: [{ at: 'inventory.yaml:3:3', message: /target 't1' is declared twice\n(.*\n)* {2}note: first declared here at cairn\.yaml:2:3/ }],
  },

  // ── Parameters ────────────────────────────────────────────────────────────────────────────────
  {
    name: 'missing required parameter',
    files: {
      'cairn.yaml': site('s'),
      'states/s.yaml': 's:\n  params: { domain: ~ }\n  parts:\n    - file: /tmp/<%= it.params.domain %>\n',
    },
    expect: [{ at: 'cairn.yaml:4:11', message: /state 's' needs parameter 'domain'/ }],
  },

  // ── References, cycles and conflicts in the graph ─────────────────────────────────────────────
  {
    name: 'dangling reference',
    files: { 'cairn.yaml': site('s'), 'states/s.yaml': 's:\n  - file: /tmp/x\n    require: file:/tmp/y\n' },
    expect: [{ at: 'states/s.yaml:3:14', message: /require 'file:\/tmp\/y' matches no node/ }],
  },
  {
    name: 'dangling notify',
    files: oneState('  - file: /tmp/x\n    notify: [reload-ngnix]\n'),
    expect: [{ at: 'states/s.yaml:3:14', message: /file:\/tmp\/x: notify 'reload-ngnix' matches no node/ }],
  },
  {
    name: 'dangling part id with the nearest name',
    files: oneState('  - file: /tmp/x\n    id: conf\n  - exec: echo\n    onchanges: cnof\n'),
    expect: [{ at: 'states/s.yaml:5:16', message: /exec:echo: onchanges 'cnof' matches no node \(did you mean 'conf'\?\)/ }],
  },
  {
    name: 'ambiguous part id: one state invoked twice, referenced from a third',
    files: {
      'cairn.yaml': site('{site: {d: a}}, {site: {d: b}}, user'),
      'states/s.yaml': 'site:\n  params: { d: ~ }\n  parts:\n    - file: /tmp/<%= it.params.d %>\n      id: conf\nuser:\n  - exec: echo\n    require: conf\n',
    },
    expect: [{ at: 'states/s.yaml:8:14', message: /exec:echo: require 'conf' is ambiguous: it names 2 nodes/ }],
  },
  {
    name: 'cycle printed as a path with positions',
    files: {
      'cairn.yaml': site('s'),
      'states/s.yaml': 's:\n  - file: /tmp/a\n    require: file:/tmp/b\n  - file: /tmp/b\n    require: file:/tmp/a\n',
    },
    expect: [
      { at: 'states/s.yaml:5:14', message: /dependency cycle: file:\/tmp\/a \(states\/s\.yaml:2:5\) → file:\/tmp\/b \(states\/s\.yaml:4:5\) → file:\/tmp\/a\n/ },
      { message: /note: file:\/tmp\/b requires file:\/tmp\/a at states\/s\.yaml:5:14\n\s+note: file:\/tmp\/a requires file:\/tmp\/b at states\/s\.yaml:3:14/ },
    ],
  },
  {
    name: 'cycle through before',
    files: oneState('  - file: /tmp/a\n    before: file:/tmp/b\n  - file: /tmp/b\n    before: file:/tmp/a\n'),
    expect: [{
      at: 'states/s.yaml:3:13',
      message: /dependency cycle: file:\/tmp\/a \(states\/s\.yaml:2:5\) → file:\/tmp\/b \(states\/s\.yaml:4:5\) → file:\/tmp\/a[\s\S]*note: file:\/tmp\/b is before file:\/tmp\/a at states\/s\.yaml:5:13/,
    }],
  },
  {
    name: 'cycle through onchanges and require',
    files: oneState('  - exec: a\n    onchanges: exec:b\n  - exec: b\n    require: exec:a\n'),
    expect: [{ at: 'states/s.yaml:5:14', message: /dependency cycle: exec:a \(states\/s\.yaml:2:5\) → exec:b \(states\/s\.yaml:4:5\) → exec:a[\s\S]*note: exec:a has onchanges exec:b at states\/s\.yaml:3:16/ }],
  },
  {
    name: 'cycle across two states through state-name references',
    files: { 'cairn.yaml': site('a, b'), 'states/s.yaml': 'a:\n  - file: /tmp/a\n    require: b\nb:\n  - file: /tmp/b\n    require: a\n' },
    expect: [{ at: 'states/s.yaml:6:14', message: /dependency cycle: file:\/tmp\/a \(states\/s\.yaml:2:5\) → file:\/tmp\/b \(states\/s\.yaml:5:5\) → file:\/tmp\/a/ }],
  },
  {
    name: 'conflicting declarations inside one invocation',
    files: {
      'cairn.yaml': site('s'),
      'states/s.yaml': 's:\n  - file: /tmp/x\n    content: a\n  - file: /tmp/x\n    content: b\n',
    },
    expect: [{ at: 'states/s.yaml:4:5', message: /conflicting declarations of file:\/tmp\/x/ }],
  },

  // ── TypeScript state files ────────────────────────────────────────────────────────────────────
  {
    name: 'TypeScript state file with a type-level syntax error',
    files: tsState("import { state, file } from 'cairn';\n\ninterface Motd { text: string; lines: }\nexport const motd = state((it) => [file('/etc/motd', { content: 'x' })]);\n"),
    expect: [{ at: 'states/motd.ts:3:39', message: /TypeScript: Unexpected "\}"/ }],
  },
  {
    name: 'TypeScript state file with an unknown attribute points at the builder call',
    files: tsState("import { state, file } from 'cairn';\n\nexport const motd = state((it) => [\n  file('/etc/motd', { contnet: 'hi' } as never),\n]);\n"),
    expect: [{ at: 'states/motd.ts:4:3', message: /file \/etc\/motd: unknown attribute 'contnet' \(did you mean 'content'\?\)/ }],
  },
  {
    name: 'TypeScript state whose parts() throws',
    files: tsState("import { state, file } from 'cairn';\n\nexport const motd = state((it) => [\n  file('/etc/motd', { content: it.vars.motd.toUpperCase() }),\n]);\n"),
    expect: [{ at: 'states/motd.ts:4:45', message: /state 'motd' failed: Cannot read properties of undefined \(reading 'toUpperCase'\)/ }],
  },

  // ── Command line ──────────────────────────────────────────────────────────────────────────────
  {
    name: '--var without =',
    files: { 'cairn.yaml': site('s'), ...okState },
    args: ['--var', 'motd'],
    expect: [{ message: /error: --var 'motd': expected key=value/ }],
  },
  {
    name: '-t that selects nothing',
    files: { 'cairn.yaml': site('s'), ...okState },
    args: ['-t', 't2'],
    expect: [{ message: /error: no target, group or glob matches 't2' \(did you mean 't1'\?\)/ }],
  },
  // ── Regressions: each of these was once wrong (position, message, cascade or crash) ──────────
  {
    name: 'a state file that fails to load gives its own error, not also "unknown state"',
    files: {
      'cairn.yaml': site('a, s'),
      'states/a.yaml': 'a:\n  - file: /tmp/a\n',
      'states/s.yaml': 's:\n  - file: /tmp/x\n    mode: "0644"\n    mode: "0600"\n',
    },
    expect: [{ at: 'states/s.yaml:4:5', message: /YAML: Map keys must be unique\n[\s\S]*\n1 error; nothing was run/ }],
  },
  {
    name: 'a cycle through a transition prior_to, reached from a node outside it',
    files: oneState('  - file: /tmp/x\n    require: service:db\n  - service: db\n    ensure: running\n  - transition: stop-db\n    resource: service:db\n    attributes: { ensure: stopped }\n    prior_to: [package:db]\n  - package: db\n    before: transition:stop-db\n'),
    expect: [
      { message: /dependency cycle: transition:stop-db \(states\/s\.yaml:6:5\) → package:db \(states\/s\.yaml:10:5\) → transition:stop-db\n/ },
      { message: /note: transition:stop-db has prior_to package:db[\s\S]*note: package:db is before transition:stop-db at states\/s\.yaml:11:13/ },
    ],
  },
  {
    name: 'a cycle through a transition resource',
    files: oneState('  - service: db\n    ensure: running\n    before: transition:stop-db\n  - transition: stop-db\n    resource: service:db\n    attributes: { ensure: stopped }\n    prior_to: [file:/tmp/x]\n  - file: /tmp/x\n'),
    expect: [
      { message: /dependency cycle: service:db \(states\/s\.yaml:2:5\) → transition:stop-db \(states\/s\.yaml:5:5\) → service:db\n/ },
      { message: /note: transition:stop-db puts service:db through a transition at states\/s\.yaml:5:5/ },
    ],
  },
  {
    name: 'a run entry that is neither a name nor a map',
    files: { 'cairn.yaml': site('42'), ...okState },
    expect: [{ at: 'cairn.yaml:4:11', message: /targets\.t1\.run\.0: a run entry is a state name, or `state: \{ param: value \}`/ }],
  },
  {
    name: 'a missing template file points at the template attribute',
    files: oneState('  - file: /tmp/x\n    template: templates/nope.eta\n'),
    expect: [{ at: 'states/s.yaml:3:15', message: /no such site file 'templates\/nope\.eta'[\s\S]*help: looked in the site folder/ }],
  },
  {
    name: 'a missing source file points at the source attribute',
    files: oneState('  - file: /tmp/x\n    source: files/nope\n'),
    expect: [{ at: 'states/s.yaml:3:13', message: /no such site file 'files\/nope'/ }],
  },
  {
    name: 'a source that is a folder points at the source attribute',
    files: { ...oneState('  - file: /etc/x\n    source: files/conf\n'), 'files/conf/a.conf': 'a\n' },
    expect: [{ at: 'states/s.yaml:3:13', message: /error: file \/etc\/x: source 'files\/conf' is a folder \(a file's source is one file\)/ }],
  },
  {
    name: 'a template that is a folder points at the template attribute',
    files: { ...oneState('  - file: /etc/x\n    template: templates/\n'), 'templates/x.eta': 'x\n' },
    expect: [{ at: 'states/s.yaml:3:15', message: /file \/etc\/x: template 'templates\/' is a folder[\s\S]*help: name one file inside it, e\.g\. template: templates\/<name>/ }],
  },
  {
    name: 'a component state whose source is a folder of the component',
    files: {
      'cairn.yaml': site('web'),
      'components/web/component.yaml': 'description: web server\n',
      'components/web/states/web.yaml': 'web:\n  - file: /etc/web\n    source: files\n',
      'components/web/files/index.html': 'hi\n',
    },
    expect: [{ at: 'components/web/states/web.yaml:3:13', message: /file \/etc\/web: source 'files' is a folder/ }],
  },
  {
    name: 'wrong meta attribute values point at the value',
    files: oneState('  - file: /tmp/x\n    noop: yes please\n  - file: /tmp/y\n    require: [file:/tmp/x, 5]\n'),
    expect: [
      { at: 'states/s.yaml:3:11', message: /file \/tmp\/x: noop: expected boolean, received string/ },
      { at: 'states/s.yaml:5:14', message: /file \/tmp\/y: require: expected a reference \(type:key, a part id or a state name\) or a list of them/ },
    ],
  },
  {
    name: 'a part that is a plain string points at the list item',
    files: oneState('  - /tmp/x\n'),
    expect: [{ at: 'states/s.yaml:2:5', message: /a part is a map whose first key names a resource type/ }],
  },
  {
    name: 'target settings: executor typo, wrong port type, unknown key — each at its own line',
    files: { 'cairn.yaml': 'targets:\n  t1:\n    executor: lcoal\n    hots: a\n    port: "22x"\n' },
    expect: [
      { at: 'cairn.yaml:3:15', message: /targets\.t1\.executor: Invalid option: expected one of "local"\|"ssh"\|"agent"\|"chroot"/ },
      { at: 'cairn.yaml:5:12', message: /targets\.t1\.port: expected number, received string/ },
      { at: 'cairn.yaml:4:5', message: /targets\.t1: unknown key 'hots' \(did you mean 'host'\?\)/ },
      { message: /3 errors; nothing was run/ },
    ],
  },
  {
    name: 'an unknown key in an inline role is reported once',
    files: { 'cairn.yaml': 'roles:\n  base:\n    runs: [s]\n' },
    expect: [{ at: 'cairn.yaml:3:5', message: /roles\.base: unknown key 'runs' \(did you mean 'run'\?\)\n[\s\S]*\n1 error; nothing was run/ }],
  },
  {
    name: 'unknown group and target names point at the list item',
    files: { 'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    groups: [wbe]\ngroups:\n  web:\n    targets: [t2]\n' },
    expect: [
      { at: 'cairn.yaml:4:14', message: /target 't1': unknown group 'wbe' \(did you mean 'web'\?\)/ },
      { at: 'cairn.yaml:7:15', message: /group 'web': unknown target 't2' \(did you mean 't1'\?\)/ },
    ],
  },
  {
    name: 'an unknown parameter points at the parameter',
    files: { 'cairn.yaml': site('{s: {domian: a}}'), 'states/s.yaml': 's:\n  params: { domain: ~ }\n  parts: []\n' },
    expect: [{ at: 'cairn.yaml:4:16', message: /state 's' has no parameter 'domian' \(did you mean 'domain'\?\)/ }],
  },
  {
    name: 'a vars file that is a list',
    files: { 'cairn.yaml': site('s'), ...okState, 'vars/all.yaml': '- a\n- b\n' },
    expect: [{ at: 'vars/all.yaml:1:1', message: /a vars file must be a map of names to values/ }],
  },
  {
    name: 'the same part id twice in one state',
    files: oneState('  - file: /tmp/x\n    id: conf\n  - file: /tmp/y\n    id: conf\n'),
    expect: [{ at: 'states/s.yaml:4:5', message: /part id 'conf' is used twice in 's'/ }],
  },
  {
    name: 'a transition without prior_to says it is required',
    files: oneState('  - transition: t\n    resource: file:/x\n    attributes: {}\n  - file: /x\n'),
    expect: [{ at: 'states/s.yaml:2:5', message: /transition t: prior_to: is required/ }],
  },
  {
    name: 'several undefined values in inline templates (quoted and block strings) all point into the strings',
    files: { 'cairn.yaml': site('s', 'states:\n  s:\n    - file: /tmp/x\n      content: "a <%= it.vars.missing %>"\n    - file: /tmp/y\n      content: |\n        a\n        b <%= it.vars.missing2 %>\n') },
    expect: [
      { at: 'cairn.yaml:8:23', message: /`it\.vars\.missing` is undefined/ },
      { at: 'cairn.yaml:12:15', message: /`it\.vars\.missing2` is undefined/ },
    ],
  },
  {
    name: 'a JavaScript syntax error inside a control tag points at the token',
    files: oneState('<% if (it.target.name === ) { %>\n  - file: /tmp/x\n<% } %>\n'),
    expect: [{ at: 'states/s.yaml:2:27', message: /template syntax error: Unexpected token '\)'/ }],
  },
  {
    name: 'an incomplete <%= %> expression',
    files: oneState('  - file: /tmp/<%= it.target.name + %>\n'),
    expect: [{ at: 'states/s.yaml:2:36', message: /template syntax error in `<%= it\.target\.name \+ %>`: the expression is incomplete/ }],
  },
  {
    name: 'a stray } in a control tag',
    files: oneState('  - file: /tmp/x\n<% } %>\n'),
    expect: [{ at: 'states/s.yaml:3:4', message: /a \} in a <% %> tag closes a block that was never opened/ }],
  },

  // ── archive and git ───────────────────────────────────────────────────────────────────────────
  {
    name: 'an archive download without its sha256 is an error, not a warning',
    files: oneState('  - archive: /opt/app\n    source: https://example.org/app-1.0.tar.gz\n'),
    expect: [{ at: 'states/s.yaml:2:5', message: /archive \/opt\/app: a download needs its sha256 \(the target checks what it downloaded against it\)/ }],
  },
  {
    name: "an archive whose format its name does not tell points at the source",
    files: oneState(`  - archive: /opt/app\n    source: https://example.org/app.rar\n    sha256: "${'a'.repeat(64)}"\n`),
    expect: [{ at: 'states/s.yaml:3:13', message: /cannot tell the archive format of 'https:\/\/example\.org\/app\.rar' from its name: add format: tar\.gz \| tgz/ }],
  },
  {
    name: 'an archive site file whose sha256 is not the one given points at the sha256',
    files: { ...oneState(`  - archive: /opt/app\n    source: files/app.tar.gz\n    sha256: "${'0'.repeat(64)}"\n`), 'files/app.tar.gz': 'not really an archive\n' },
    expect: [{ at: 'states/s.yaml:4:14', message: /the site file 'files\/app\.tar\.gz' has sha256 [0-9a-f]{64}, not 0{64}/ }],
  },
  {
    name: 'unknown attribute of an archive',
    files: oneState('  - archive: /opt/app\n    source: files/app.zip\n    strip_component: 1\n'),
    expect: [{ at: 'states/s.yaml:4:5', message: /archive \/opt\/app: unknown attribute 'strip_component' \(did you mean 'strip_components'\?\)/ }],
  },
  {
    name: 'a git revision given as a number',
    files: oneState('  - git: /srv/app\n    repository: https://example.org/app.git\n    revision: 1.5\n'),
    expect: [{ at: 'states/s.yaml:4:15', message: /git \/srv\/app: revision: expected string, received number/ }],
  },
  {
    name: 'unknown attribute of a git checkout, and its missing repository',
    files: oneState('  - git: /srv/app\n    repo: https://example.org/app.git\n'),
    expect: [
      { at: 'states/s.yaml:3:5', message: /git \/srv\/app: unknown attribute 'repo'/ },
      { at: 'states/s.yaml:2:5', message: /git \/srv\/app: repository: is required/ },
    ],
  },
  // ── Bounded inputs (issue #27 §3): refused with a position, never a hang or a crash ────────
  {
    name: 'state_dir: "" is refused at compile time, not mid-run',
    files: { 'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    state_dir: ""\n    run: [s]\n', ...okState },
    expect: [{ at: 'cairn.yaml:4:17', message: /state_dir: state_dir must be an absolute path/ }],
  },
  {
    name: 'a relative state_dir is refused',
    files: { 'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    state_dir: state\n    run: [s]\n', ...okState },
    expect: [{ at: 'cairn.yaml:4:16', message: /state_dir must be an absolute path/ }],
  },
  {
    name: 'provider: nosuch is a compile error naming the providers there are',
    files: oneState('  - file: /tmp/x\n    content: a\n  - file: /tmp/y\n    content: b\n    provider: nosuch\n'),
    expect: [{ at: 'states/s.yaml:6:15', message: /file \/tmp\/y: no provider 'nosuch' for file[\s\S]*providers of file: posix/ }],
  },
  {
    name: 'CR-only line ends in cairn.yaml',
    files: { 'cairn.yaml': 'targets:\r  t1:\r    executor: local\r    run: [s]\r', ...okState },
    expect: [{ at: 'cairn.yaml:1:9', message: /a carriage return \(CR\) that does not end a CRLF line end/ }],
  },
  {
    name: 'a bare CR inside a state file',
    files: { 'cairn.yaml': site('s'), 'states/s.yaml': 's:\n  - file: /tmp/x\n    content: a\rb\n' },
    expect: [{ at: 'states/s.yaml:3:15', message: /carriage return \(CR\)/ }],
  },
  {
    name: 'a YAML alias bomb in a vars file is cut off at the alias that crosses the cap',
    files: { 'cairn.yaml': site('s'), ...okState, 'vars/all.yaml': 'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\ni: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n' },
    expect: [{ at: 'vars/all.yaml:5:36', message: /YAML: aliases expand to more than 100,000 values in this document/ }],
  },
  {
    name: 'a YAML alias bomb in a state file',
    files: { 'cairn.yaml': site('s'), 'states/s.yaml': 'a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\ni: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\ns:\n  - file: /tmp/x\n' },
    expect: [{ message: /YAML: aliases expand to more than 100,000 values/ }],
  },
  {
    name: 'a duplicate key far down a large map is still found',
    files: { 'cairn.yaml': site('s'), ...okState, 'vars/all.yaml': `${Array.from({ length: 5000 }, (_, i) => `v${i}: ${i}\n`).join('')}v17: again\n` },
    expect: [{ at: 'vars/all.yaml:5001:1', message: /YAML: Map keys must be unique/ }],
  },
  {
    name: 'guest: a uri with a scheme libvirt does not know',
    files: oneState('  - guest: web1\n    profile: base\n    uri: qemm:///system\n'),
    expect: [{ at: 'states/s.yaml:4:10', message: /guest web1: uri: a libvirt URI: DRIVER\[\+TRANSPORT\]:\/\/\[HOST\]\/PATH/ }],
  },
  {
    name: 'guest: a memory size with a unit typo',
    files: oneState('  - guest: web1\n    profile: base\n    memory: 512MX\n'),
    expect: [{ at: 'states/s.yaml:4:13', message: /guest web1: memory: a size is a number with a unit K, M, G or T/ }],
  },
  {
    name: 'guest: a disk size without a unit it knows, and a network of an unknown kind',
    files: oneState('  - guest: web1\n    profile: base\n    disks: [20G, 4X]\n    networks: [vlan:7]\n'),
    expect: [
      { at: 'states/s.yaml:4:18', message: /guest web1: disks\.1: a size is a number with a unit/ },
      { at: 'states/s.yaml:5:16', message: /guest web1: networks\.0: a network is a libvirt network name/ },
    ],
  },
];
