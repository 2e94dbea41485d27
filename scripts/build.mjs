// Bundles the CLI into one ESM file (fast start-up: no TypeScript at run time) and the typed API.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, rmSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  // esbuild is only needed for TypeScript state files and stays a runtime import.
  external: ['esbuild'],
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  logLevel: 'warning',
};
await build({ ...common, entryPoints: ['src/cli/bin.ts'], outfile: 'dist/cairn.mjs', splitting: false });
await build({ ...common, entryPoints: ['src/api/index.ts'], outfile: 'dist/api.mjs' });
chmodSync('dist/cairn.mjs', 0o755);
execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
