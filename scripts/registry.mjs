// Writes the registries of resource types from the folders in src/resources/: a folder with a
// type.ts (default export: the type) and a providers.ts (default export: its providers, in the
// order they are tried) is a type. Adding a type is adding a folder; `npm run build` runs this,
// and test/registry.test.ts fails when a committed registry is out of date.
//   node scripts/registry.mjs [--check] [ROOT]
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const args = process.argv.slice(2);
const check = args.includes('--check');
const root = resolve(args.find((a) => !a.startsWith('--')) ?? '.');
const resources = join(root, 'src/resources');

// Builders are named after their type in camelCase; a name JavaScript reserves gets the short
// form users of the API already know.
const RESERVED = { package: 'pkg' };
const JS_RESERVED = new Set(['break', 'case', 'catch', 'class', 'const', 'continue', 'debugger', 'default', 'delete', 'do', 'else',
  'enum', 'export', 'extends', 'false', 'finally', 'for', 'function', 'if', 'import', 'in', 'instanceof', 'new', 'null', 'return',
  'super', 'switch', 'this', 'throw', 'true', 'try', 'typeof', 'var', 'void', 'while', 'with', 'yield', 'let', 'static',
  'implements', 'interface', 'package', 'private', 'protected', 'public', 'await']);

const folders = readdirSync(resources, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(resources, d.name, 'type.ts')))
  .map((d) => d.name)
  .sort();
const problems = [];
for (const name of folders) {
  if (!/^[a-z][a-z0-9_]*$/.test(name)) problems.push(`src/resources/${name}: a type's folder is its name: lower case, digits and _`);
  if (!existsSync(join(resources, name, 'providers.ts'))) problems.push(`src/resources/${name}: has a type.ts but no providers.ts`);
  for (const file of ['type.ts', 'providers.ts']) {
    const path = join(resources, name, file);
    if (existsSync(path) && !/^export default /m.test(readFileSync(path, 'utf8'))) problems.push(`src/resources/${name}/${file}: needs an \`export default\``);
  }
}
if (problems.length) {
  console.error(`registry: ${problems.join('\n registry: ')}`);
  process.exit(2);
}

const id = (name) => name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
function builderName(name) {
  const camel = id(name);
  if (RESERVED[camel]) return RESERVED[camel];
  if (JS_RESERVED.has(camel)) {
    console.error(`registry: the type ${name} is a word JavaScript reserves: add its builder's name to RESERVED in scripts/registry.mjs`);
    process.exit(2);
  }
  return camel;
}

const header = '// Written by scripts/registry.mjs from the folders in src/resources/ (`npm run build` runs it): do not edit.\n';
const files = {
  'src/resources/types.generated.ts': `${header}${folders.map((n) => `import ${id(n)}Type from './${n}/type.ts';\n`).join('')}
/** Every resource type, by name. */
export const generatedTypes = {
${folders.map((n) => `  ${n}: ${id(n)}Type,\n`).join('')}} as const;
`,
  'src/resources/providers.generated.ts': `${header}import type { Provider } from './type.ts';
${folders.map((n) => `import ${id(n)}Providers from './${n}/providers.ts';\n`).join('')}
/** Every type's providers, in the order they are tried. */
export const generatedProviders: Record<string, readonly Provider[]> = {
${folders.map((n) => `  ${n}: ${id(n)}Providers,\n`).join('')}};
`,
  'src/api/builders.generated.ts': `${header}import { builder } from './builder.ts';

${folders.map((n) => `export const ${builderName(n)} = builder('${n}');\n`).join('')}`,
};

let stale = [];
for (const [path, content] of Object.entries(files)) {
  const abs = join(root, path);
  const old = existsSync(abs) ? readFileSync(abs, 'utf8') : undefined;
  if (old === content) continue;
  if (check) stale.push(path);
  else writeFileSync(abs, content);
}
if (stale.length) {
  console.error(`registry: out of date (run node scripts/registry.mjs): ${stale.join(', ')}`);
  process.exit(1);
}
