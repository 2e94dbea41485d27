/**
 * `import()` that works wherever Cairn's code runs. The CLI's bundle runs from V8's code cache in
 * a vm.Script (src/cli/launch.ts), and on Node 20 a script made from cached data loses its
 * dynamic-import callback ("A dynamic import callback was not specified"), so the launcher lends
 * an `import()` of its own. From source (tests, the API bundle) the plain one is used.
 */
export const LENT_IMPORT = Symbol.for('cairn.import');

export function dynamicImport<T>(specifier: string): Promise<T> {
  const lent = (globalThis as { [LENT_IMPORT]?: (specifier: string) => Promise<unknown> })[LENT_IMPORT];
  return (lent ? lent(specifier) : import(specifier)) as Promise<T>;
}

/**
 * The launcher's loader of the other built files (dist/cairn-vendor.cjs), which runs them from
 * their code cache too. The built files are written for the launcher alone (scripts/build.mjs:
 * each is the function it calls), so the bundle always has it.
 */
export const LENT_LOAD = Symbol.for('cairn.load');
