/**
 * One builder per resource type for TypeScript state files (builders.generated.ts names them),
 * typed from the type's schema: `file('/etc/motd', { content })` checks its attributes at compile
 * time, and returns the part map a YAML file would hold, tagged with the call site.
 */
import type { z } from 'zod';
import type { SourcePos } from '../lib/errors.ts';
import type { generatedTypes } from '../resources/types.generated.ts';
import { setPos } from '../lib/positions.ts';

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

export type Part = Record<string, unknown>;

type Types = typeof generatedTypes;
export type TypeName = keyof Types;
type Input<N extends TypeName> = z.input<Types[N]['schema']>;
type Own<N extends TypeName> = Omit<Input<N>, Types[N]['key']>;
/** A type's attributes other than its key, and the meta attributes. */
export type Attrs<N extends TypeName> = Own<N> & Meta;
type RequiredKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? never : K }[keyof T];
/** `(key, attrs?)`, or `(key, attrs)` when the type has a required attribute besides its key. */
export type Builder<N extends TypeName> = [RequiredKeys<Own<N>>] extends [never]
  ? (key: string, attrs?: Attrs<N>) => Part
  : (key: string, attrs: Attrs<N>) => Part;

/** Where user code called a builder: the first stack frame outside this module. */
export function callSite(): SourcePos | undefined {
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


export function builder<N extends TypeName>(type: N): Builder<N> {
  return ((key: string, attrs?: object) => part(type, key, attrs)) as Builder<N>;
}
