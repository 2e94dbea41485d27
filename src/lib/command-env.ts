/**
 * The environment of commands Cairn runs. The launcher (cli/launch.ts) sizes libuv's thread pool
 * through UV_THREADPOOL_SIZE, which the pool reads when it first starts; when the launcher set it
 * (not the user), the variable is Cairn's own business and is left out here.
 */
export const POOL_SIZE_BY_LAUNCHER = Symbol.for('cairn.poolSizeByLauncher');

export function commandEnv(extra?: Record<string, string>): NodeJS.ProcessEnv {
  const ours = (globalThis as { [POOL_SIZE_BY_LAUNCHER]?: boolean })[POOL_SIZE_BY_LAUNCHER] === true;
  if (!ours && !extra) return process.env;
  const env = { ...process.env, ...extra };
  if (ours && extra?.UV_THREADPOOL_SIZE === undefined) delete env.UV_THREADPOOL_SIZE;
  return env;
}
