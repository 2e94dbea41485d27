// Bundles the CLI (dist/cairn-main.cjs; dist/cairn-vendor.cjs with zod, yaml and age-encryption; dist/cairn-vendor-pki.cjs with X.509 and WebSocket; dist/cairn-vendor-ssh.cjs with the SSH client; the launcher dist/cairn.cjs; no TypeScript at run time) and the typed API.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parse } from 'yaml';

// The type registries first: a type folder added since the last build is picked up.
execFileSync(process.execPath, ['scripts/registry.mjs'], { stdio: 'inherit' });
rmSync('dist', { recursive: true, force: true });
// The built-in OS tables, parsed once here so a run reads no file for them.
const osTables = Object.fromEntries(readdirSync('src/catalog/os').filter((f) => f.endsWith('.yaml')).sort()
  .map((f) => [`(built in) os/${f}`, parse(readFileSync(`src/catalog/os/${f}`, 'utf8'))]));
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  // esbuild (TypeScript state files) and ssh2 (SSH targets, with optional native parts; the CLI has
  // it in a vendor file of its own, below) stay runtime imports,
  // as do the store's better-sqlite3 (native addon), etcd3 (reads its .proto files at run time) and
  // cockatiel (etcd3's fault-handling policies: one copy, shared with etcd3).
  external: ['esbuild', 'ssh2', 'better-sqlite3', 'etcd3', 'cockatiel'],
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
  // Identifies this build in the compile cache's key: a new build never reuses an old result.
  define: {
    __CAIRN_BUILD__: JSON.stringify(`${process.env.npm_package_version ?? '0'}-${Date.now()}`),
    // As JSON text, parsed on first use (src/catalog/builtin-os.ts says why).
    __CAIRN_OS_TABLES__: JSON.stringify(JSON.stringify(osTables)),
  },
};
// The command: one CommonJS file that dist/cairn.cjs (src/cli/launch.ts) runs from V8's code
// cache. What a command does not use stays unevaluated until it is first imported (esbuild wraps
// lazily imported modules), so a converged `apply` never sets up the YAML parser or the compiler.
const { banner: _esmBanner, ...cjs } = common;
// The files the launcher runs (the bundle and the vendor files) are written as the function it
// calls, CommonJS's wrapper included: wrapping the text at run time made a second string of it,
// which V8 then copied whole into its heap to compile (1.4 MB for the bundle, on every run). Read
// as it is, a large file is one external string that V8 compiles in place. The wrapper is part of
// the file, so the lines and columns a stack trace names are the file's (and its source map's).
const launched = { banner: { js: '(function (exports, require, module, __filename, __dirname) {' }, footer: { js: '})' } };
// commander loads child_process (and with it net, dgram and streams) at its start, for
// executable subcommands, which Cairn has none of: it gets the module when it first uses it.
const lazyChildProcessForCommander = {
  name: 'lazy-child-process-for-commander',
  setup(b) {
    b.onResolve({ filter: /^(node:)?child_process$/ }, (args) => (/[\\/]commander[\\/]/.test(args.importer) ? { path: 'commander-child-process', namespace: 'lazy' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'lazy' }, () => ({
      contents: "module.exports = { spawn: (...args) => process.getBuiltinModule('node:child_process').spawn(...args) };",
      loader: 'js',
    }));
  },
};
// Libraries a converged run never uses live in files of their own beside the bundle, which the
// launcher runs from their own code cache on first use (src/cli/launch.ts): out of the bundle, a
// run neither reads them nor deserializes their functions' cache entries. dist/cairn-vendor.cjs
// holds the compiler's (zod and yaml, two thirds of the code; age-encryption for `!secret`),
// dist/cairn-vendor-pki.cjs the master's and the agents' (X.509, reflect-metadata that its
// dependency injection needs first, WebSocket), half of what was left of the bundle.
const VENDOR_FILES = {
  'cairn-vendor.cjs': ['zod', 'yaml', 'age-encryption'],
  'cairn-vendor-pki.cjs': ['reflect-metadata', '@peculiar/x509', 'ws'],
  // SSH targets' client: 33 files (ssh2 and what it requires) that Node compiled on every run that reached a host (50
  // to 70 ms, no code cache for node_modules on Node 20). Its optional native parts (its crypto
  // binding, cpu-features) stay runtime requires, found in node_modules as before.
  'cairn-vendor-ssh.cjs': ['ssh2'],
};
/** ssh2's native parts: required from node_modules at run time, where npm built them (or failed to, which ssh2 allows). */
const nativeParts = {
  name: 'native-parts',
  setup(b) {
    b.onResolve({ filter: /[\\/]sshcrypto\.node$/ }, () => ({ path: 'ssh2/lib/protocol/crypto/build/Release/sshcrypto.node', external: true }));
  },
};
const vendorFileOf = new Map(Object.entries(VENDOR_FILES).flatMap(([file, modules]) => modules.map((m) => [m, file])));
const escape = (m) => m.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
const vendorFiles = {
  name: 'vendor-files',
  setup(b) {
    b.onResolve({ filter: new RegExp(`^(${[...vendorFileOf.keys()].map(escape).join('|')})$`) }, (args) => ({ path: args.path, namespace: 'vendor' }));
    b.onLoad({ filter: /.*/, namespace: 'vendor' }, (args) => {
      const file = JSON.stringify(vendorFileOf.get(args.path));
      return {
        contents: `module.exports = globalThis[Symbol.for('cairn.load')](${file})[${JSON.stringify(args.path)}];`,
        loader: 'js',
      };
    });
  },
};
// Every type's providers (src/resources/providers.generated.ts) are imported by the engine, so a
// run set up the modules of all 22 types (their tables, classes and patterns: half of the modules
// a converged run initialised, and a third of its young objects) to use two or three; and every
// type's schema (src/resources/types.generated.ts) by the compiler, whose zod schemas cost a
// one-change compile about 15 ms, when a site uses a few types. In the bundle each registry gets
// a type's module on first use instead: a require() that esbuild turns into that module's lazy
// initialisation. The source keeps its plain imports (tests run it).
const lazyRegistries = {
  name: 'lazy-registries',
  setup(b) {
    b.onLoad({ filter: /[\\/]src[\\/]resources[\\/](providers|types)\.generated\.ts$/ }, (args) => {
      const source = readFileSync(args.path, 'utf8');
      const imports = new Map([...source.matchAll(/^import (\w+) from '(\.\/[a-z0-9_]+\/(?:providers|type)\.ts)';$/gm)].map((m) => [m[1], m[2]]));
      const entries = [...source.matchAll(/^ {2}([a-z0-9_]+): (\w+),$/gm)].map((m) => [m[1], imports.get(m[2])]);
      const name = /^export const (\w+)(?::[^=\n]*)? = \{$/m.exec(source)?.[1];
      if (!name || entries.length === 0 || entries.some(([, path]) => path === undefined)) throw new Error(`lazy-registries: cannot read ${args.path}`);
      return {
        contents: `const ${name} = {};
for (const [type, load] of Object.entries({
${entries.map(([type, path]) => `  ${type}: () => require(${JSON.stringify(path)}).default,`).join('\n')}
})) {
  Object.defineProperty(${name}, type, {
    enumerable: true,
    configurable: true,
    get() {
      const loaded = load();
      Object.defineProperty(${name}, type, { value: loaded, enumerable: true });
      return loaded;
    },
  });
}
export { ${name} };
`,
        loader: 'js',
        resolveDir: dirname(args.path),
      };
    });
  },
};
/**
 * esbuild fills the exports object of each module the bundle loads lazily (an import() or a
 * require()) at the bundle's start: a getter, its closure and a property for every export, of
 * some 70 modules, though a converged run loads a handful of them (the run's first half of a
 * millisecond, and 70 KB of young objects, close to what costs it a scavenge). Every use of such
 * an object follows its module's initialisation, `(init_x(), x_exports)`, so the bundle fills it
 * there instead: the call moves to the first line of `init_x`'s body, its own lines left blank,
 * so that no other line moves (the source map and the lines stack traces name stay right).
 */
function exportsOnInit(file) {
  const text = readFileSync(file, 'latin1');
  // One module per section: esbuild heads each with a comment naming its file.
  const sections = text.split(/^(?=\/\/ \S+$)/m);
  let moved = 0;
  const out = sections.map((section) => {
    const calls = [...section.matchAll(/^__export\((\w+), \{\n(?: {2}[^\n]*\n)*?\}\);\n/gm)];
    const inits = [...section.matchAll(/^var init_\w+ = __esm\(\{\n {2}"[^"\n]*"\(\) \{$/gm)];
    if (calls.length !== 1 || inits.length !== 1 || calls[0].index > inits[0].index) return section;
    const call = calls[0][0];
    const lines = call.split('\n').length - 1;
    const oneLine = call.replace(/\n\s*/g, ' ').trim();
    const blanked = section.slice(0, calls[0].index) + '\n'.repeat(lines) + section.slice(calls[0].index + call.length);
    const header = inits[0][0];
    moved++;
    return blanked.replace(header, `${header} ${oneLine}`);
  });
  if (out.join('').split('\n').length !== text.split('\n').length) throw new Error(`exportsOnInit: ${file}: lines moved`);
  writeFileSync(file, out.join(''), 'latin1');
  return moved;
}
for (const [file, modules] of Object.entries(VENDOR_FILES)) {
  await build({
    ...cjs,
    ...launched,
    format: 'cjs',
    external: [...cjs.external.filter((m) => !modules.includes(m)), 'cpu-features'],
    plugins: [nativeParts],
    // Each library is set up when first asked for: a compile needs zod and yaml, and not
    // age-encryption, whose post-quantum tables took 10 ms to compute at every compile.
    stdin: { contents: modules.map((m) => `Object.defineProperty(exports, ${JSON.stringify(m)}, { enumerable: true, get: () => require(${JSON.stringify(m)}) });`).join('\n'), resolveDir: '.', loader: 'js' },
    outfile: `dist/${file}`,
    sourcemap: false,
  });
}
await build({
  ...cjs,
  ...launched,
  format: 'cjs',
  entryPoints: { 'cairn-main': 'src/cli/bin.ts' },
  plugins: [lazyChildProcessForCommander, vendorFiles, lazyRegistries],
  outdir: 'dist',
  outExtension: { '.js': '.cjs' },
  // builtin-os.ts reads import.meta only when run from source (tests), never in the bundle.
  logOverride: { 'empty-import-meta': 'silent' },
});
exportsOnInit('dist/cairn-main.cjs');
await build({ ...cjs, format: 'cjs', entryPoints: { cairn: 'src/cli/launch.ts' }, outdir: 'dist', outExtension: { '.js': '.cjs' }, sourcemap: false, banner: { js: '#!/usr/bin/env node' } });
await build({ ...common, entryPoints: ['src/api/index.ts'], outfile: 'dist/api.mjs' });
// The web UI (src/ui): one browser script and its page and style sheet, served by `cairn master` from dist/ui.
await build({ entryPoints: ['src/ui/main.ts'], bundle: true, platform: 'browser', format: 'iife', target: 'es2022', outfile: 'dist/ui/app.js', sourcemap: false, logLevel: 'warning' });
for (const file of ['index.html', 'app.css']) copyFileSync(`src/ui/${file}`, `dist/ui/${file}`);
chmodSync('dist/cairn.cjs', 0o755);
execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
