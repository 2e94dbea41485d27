/**
 * The environment of commands Cairn runs. The launcher (cli/launch.ts) sizes libuv's thread pool
 * through UV_THREADPOOL_SIZE, which the pool reads when it first starts; when the launcher set it
 * (not the user), the variable is Cairn's own business and commands do not get it.
 */
import { stat } from 'node:fs';

export const POOL_SIZE_BY_LAUNCHER = Symbol.for('cairn.poolSizeByLauncher');

export function commandEnv(extra?: Record<string, string>): NodeJS.ProcessEnv {
  const launcher = globalThis as { [POOL_SIZE_BY_LAUNCHER]?: boolean };
  if (launcher[POOL_SIZE_BY_LAUNCHER]) {
    // Any request to the pool starts it, reading the variable then and there; after that the
    // variable can go (copying process.env for every command instead costs more than this).
    stat('/', () => undefined);
    delete process.env.UV_THREADPOOL_SIZE;
    launcher[POOL_SIZE_BY_LAUNCHER] = false;
  }
  return extra ? { ...process.env, ...extra } : process.env;
}
