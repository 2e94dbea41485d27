/** zod validation whose errors point at the offending key or value in the user's file. */
import type { z } from 'zod';
import { didYouMean } from '../lib/did-you-mean.ts';
import type { Diagnostics, SourcePos } from '../lib/errors.ts';
import { keyPosOf, posOf } from '../lib/positions.ts';

/** Walks `path` into `data`, returning the container holding the last step and that step. */
function locate(data: unknown, path: readonly PropertyKey[]): { parent: unknown; key?: string | number } {
  let parent: unknown = data;
  for (let i = 0; i < path.length - 1; i++) {
    const next = (parent as Record<PropertyKey, unknown> | null)?.[path[i] as string];
    if (next === null || typeof next !== 'object') return { parent, key: path[i] as string | number };
    parent = next;
  }
  const last = path[path.length - 1];
  return { parent, key: typeof last === 'symbol' ? undefined : last };
}

export interface ValidateOptions {
  /** Where to point when the data itself has no position (e.g. built by code). */
  fallback?: SourcePos;
  /** Describes what is validated, for messages: "attribute", "target setting", … */
  what?: string;
  /** Words that are also valid here, offered as suggestions for unknown keys. */
  extraNames?: readonly string[];
  /** Prefix for messages, e.g. "file /etc/motd: ". */
  prefix?: string;
}

/** Parses `data` with `schema`; on failure adds positioned diagnostics and returns undefined. */
export function validate<S extends z.ZodType>(
  schema: S,
  data: unknown,
  diagnostics: Diagnostics,
  options: ValidateOptions = {},
): z.output<S> | undefined {
  const result = schema.safeParse(data);
  if (result.success) return result.data;
  const what = options.what ?? 'key';
  const prefix = options.prefix ?? '';
  for (const issue of result.error.issues) {
    const { parent, key } = locate(data, issue.path);
    if (issue.code === 'unrecognized_keys') {
      const container = key === undefined ? parent : (parent as Record<string, unknown>)[key as string];
      const known = [...shapeKeys(schema, issue.path), ...(options.extraNames ?? [])];
      const inside = issue.path.length ? `${issue.path.join('.')}: ` : '';
      for (const unknownKey of issue.keys) {
        diagnostics.add(
          `${prefix}${inside}unknown ${what} '${unknownKey}'${didYouMean(unknownKey, known)}`,
          keyPosOf(container, unknownKey) ?? options.fallback,
          { hint: known.length ? `valid: ${known.join(', ')}` : undefined },
        );
      }
      continue;
    }
    const pos = (key === undefined ? posOf(parent) : posOf(parent, key)) ?? options.fallback;
    const where = issue.path.length ? `${issue.path.join('.')}: ` : '';
    const missing = key !== undefined && parent !== null && typeof parent === 'object' && (parent as Record<string, unknown>)[key] === undefined;
    // A refinement that requires the attribute says why (a key URL needs its sha256): the help line.
    const why = missing && issue.code === 'custom' ? { hint: issue.message } : undefined;
    diagnostics.add(`${prefix}${where}${missing ? 'is required' : describeIssue(issue)}`, pos, why);
  }
  return undefined;
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_type' && issue.message.includes('received undefined')) {
    return `is required (${issue.expected})`;
  }
  return issue.message.replace(/^Invalid input: /, '');
}

/** Keys of the object schema reached by `path` (for suggestions). */
function shapeKeys(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let current: unknown = schema;
  for (const step of path) {
    const def = (current as { def?: { shape?: Record<string, unknown>; element?: unknown; valueType?: unknown } }).def;
    if (def?.shape && typeof step === 'string') current = def.shape[step];
    else if (def?.element) current = def.element;
    else if (def?.valueType) current = def.valueType;
    current = unwrap(current);
  }
  const shape = (unwrap(current) as { def?: { shape?: Record<string, unknown> } }).def?.shape;
  return shape ? Object.keys(shape) : [];
}

function unwrap(schema: unknown): unknown {
  let s = schema as { def?: { innerType?: unknown; in?: unknown; type?: string } } | undefined;
  for (let i = 0; i < 10 && s?.def; i++) {
    if (s.def.innerType) s = s.def.innerType as typeof s;
    else if (s.def.type === 'pipe' && s.def.in) s = s.def.in as typeof s;
    else break;
  }
  return s;
}
