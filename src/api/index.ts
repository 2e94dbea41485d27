/**
 * The typed API for TypeScript state files:
 *
 *   import { state, file, exec } from 'cairn';
 *   export const motd = state({ parts: (it) => [file('/etc/motd', { content: `${it.vars.motd}\n` })] });
 *
 * Builders return the same part maps a YAML file holds, tagged with the call site, so errors point
 * into the .ts file.
 */
import type { z } from 'zod';
import type { SourcePos } from '../lib/errors.ts';
import { setPos } from '../lib/positions.ts';
import type { fileType } from '../resources/file/type.ts';
import type { directoryType } from '../resources/directory/type.ts';
import type { symlinkType } from '../resources/symlink/type.ts';
import type { lineType } from '../resources/line/type.ts';
import type { execType } from '../resources/exec/type.ts';
import type { transitionType } from '../resources/transition/type.ts';
import type { packageType } from '../resources/package/type.ts';
import type { serviceType } from '../resources/service/type.ts';
import type { userType } from '../resources/user/type.ts';
import type { groupType } from '../resources/group/type.ts';
import type { authorizedKeyType } from '../resources/authorized_key/type.ts';
import type { cronType } from '../resources/cron/type.ts';
import type { sysctlType } from '../resources/sysctl/type.ts';

type Refs = string | string[];
/** Meta attributes, the same for every type (DESIGN §4). */
export interface Meta {
  id?: string;
  require?: Refs;
  before?: Refs;
  notify?: Refs;
  listen?: Refs;
  onchanges?: Refs;
  onfail?: Refs;
  noop?: boolean;
  provider?: string;
  allow_reload?: boolean;
  allow_rebuild?: boolean;
  tags?: string[];
}

type Attrs<T extends { schema: z.ZodType }, K extends string> = Omit<z.input<T['schema']>, K> & Meta;

/** The `it` a state's parts function receives. */
export interface Scope {
  // Users' variables are free-form; `any` lets a typed state file read them without casts.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  vars: Record<string, any>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  params: Record<string, any>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  facts: Record<string, any>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  os: Record<string, any>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  target: Record<string, any>;
}

export type Part = Record<string, unknown>;

export interface StateSpec {
  readonly kind: 'cairn-state';
  params?: Record<string, unknown>;
  lazy?: boolean;
  defer?: boolean;
  include?: string[];
  parts: (it: Scope) => Part[];
  pos?: SourcePos;
}

/** Where user code called a builder: the first stack frame outside this module. */
function callSite(): SourcePos | undefined {
  const stack = new Error().stack?.split('\n') ?? [];
  for (const frame of stack.slice(1)) {
    const m = /\(?((?:file:\/\/)?\/[^():]+\.(?:ts|mts)):(\d+):(\d+)\)?$/.exec(frame.trim());
    if (m && !m[1]!.includes('/src/api/')) {
      return { file: m[1]!.replace(/^file:\/\//, ''), line: Number(m[2]), col: Number(m[3]) };
    }
  }
  return undefined;
}

function part(type: string, key: unknown, attrs: object | undefined): Part {
  const p: Part = { [type]: key, ...(attrs ?? {}) };
  const pos = callSite();
  setPos(p, pos, Object.fromEntries(Object.keys(p).flatMap((k) => (pos ? [[k, pos]] : []))));
  return p;
}

export function state(spec: Omit<StateSpec, 'kind' | 'pos'> | ((it: Scope) => Part[])): StateSpec {
  const s = typeof spec === 'function' ? { parts: spec } : spec;
  return { kind: 'cairn-state', ...s, pos: callSite() };
}

export const file = (path: string, attrs?: Attrs<typeof fileType, 'path'>) => part('file', path, attrs);
export const directory = (path: string, attrs?: Attrs<typeof directoryType, 'path'>) => part('directory', path, attrs);
export const symlink = (path: string, attrs: Attrs<typeof symlinkType, 'path'>) => part('symlink', path, attrs);
export const line = (path: string, attrs: Attrs<typeof lineType, 'path'>) => part('line', path, attrs);
export const exec = (command: string, attrs?: Attrs<typeof execType, 'command'>) => part('exec', command, attrs);
export const transition = (name: string, attrs: Attrs<typeof transitionType, 'name'>) => part('transition', name, attrs);
/** `package` is a reserved word in strict mode, hence `pkg`. */
export const pkg = (name: string, attrs?: Attrs<typeof packageType, 'name'>) => part('package', name, attrs);
export const service = (name: string, attrs?: Attrs<typeof serviceType, 'name'>) => part('service', name, attrs);
export const user = (name: string, attrs?: Attrs<typeof userType, 'name'>) => part('user', name, attrs);
export const group = (name: string, attrs?: Attrs<typeof groupType, 'name'>) => part('group', name, attrs);
export const authorizedKey = (key: string, attrs: Attrs<typeof authorizedKeyType, 'key'>) => part('authorized_key', key, attrs);
export const cron = (name: string, attrs?: Attrs<typeof cronType, 'name'>) => part('cron', name, attrs);
export const hostname = (name: string) => part('hostname', name, undefined);
export const sysctl = (name: string, attrs: Attrs<typeof sysctlType, 'name'>) => part('sysctl', name, attrs);
