// Bundles the CLI into one ESM file (fast start-up: no TypeScript at run time) and the typed API.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { parse } from 'yaml';

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
  // esbuild (TypeScript state files) and ssh2 (SSH targets, with optional native parts) stay runtime imports,
  // as do the store's better-sqlite3 (native addon), etcd3 (reads its .proto files at run time) and
  // cockatiel (etcd3's fault-handling policies: one copy, shared with etcd3).
  external: ['esbuild', 'ssh2', 'better-sqlite3', 'etcd3', 'cockatiel'],
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
  // Identifies this build in the compile cache's key: a new build never reuses an old result.
  define: {
    __CAIRN_BUILD__: JSON.stringify(`${process.env.npm_package_version ?? '0'}-${Date.now()}`),
    __CAIRN_OS_TABLES__: JSON.stringify(osTables),
  },
};
// Split into chunks: a command loads only the code it uses (a converged `apply` never loads
// the YAML parser or the compiler), which keeps start-up lean.
await build({
  ...common,
  entryPoints: { cairn: 'src/cli/bin.ts' },
  outdir: 'dist',
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  outExtension: { '.js': '.mjs' },
});
await build({ ...common, entryPoints: ['src/api/index.ts'], outfile: 'dist/api.mjs' });
chmodSync('dist/cairn.mjs', 0o755);
execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
