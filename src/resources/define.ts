/**
 * Defining a type (DESIGN §6), on the compile side: zod is loaded here, never by a run. What an
 * attribute's change needs, and whether it is write-only, sensitive or internal, is declared on
 * the attribute's own schema (as Terraform's plan modifiers are), and gathered into plain lists
 * the compiled graph carries to the engine.
 */
import { z } from 'zod';
import type { ChangeClass, ResourceType, TypeDefinition } from './type.ts';

export interface AttributeBehaviour {
  /** What a change to it needs; an attribute without one is an input, never compared. */
  change?: ChangeClass;
  /** Cannot be read back from the target: compared through a hash of what was applied. */
  writeOnly?: true;
  /** Its value never appears in output, diffs, reports or logs. */
  sensitive?: true;
  /** Filled in by the type's `resolve`; a site never writes it. */
  internal?: true;
}

const behaviours = z.registry<AttributeBehaviour>();

/**
 * Declares behaviour on a copy of `schema` (shared schemas, `ensurePresence` say, take different
 * classes in different types); declarations stack, `internal(update(s))`. Wrap last: a later
 * `.optional()` makes a new schema that has lost it (define() looks through such wrappers, but
 * not through `.describe()`, which copies).
 */
export function declare<S extends z.ZodType>(schema: S, behaviour: AttributeBehaviour): S {
  const copy = schema.clone() as S;
  // A copy inherits its parent's entries (zod registries follow `parent`): only the new ones here.
  (copy as z.ZodType).register(behaviours, behaviour);
  return copy;
}

/** Changed in place. */
export const update = <S extends z.ZodType>(schema: S): S => declare(schema, { change: 'update' });
/** Changed in place, then the thing restarts (stop, change, start). */
export const reload = <S extends z.ZodType>(schema: S): S => declare(schema, { change: 'reload' });
/** Changed by replacing the thing (destroy, create, or the provider's `rebuild`). */
export const rebuild = <S extends z.ZodType>(schema: S): S => declare(schema, { change: 'rebuild' });
export const writeOnly = <S extends z.ZodType>(schema: S): S => declare(schema, { writeOnly: true });
export const sensitive = <S extends z.ZodType>(schema: S): S => declare(schema, { sensitive: true });
export const internal = <S extends z.ZodType>(schema: S): S => declare(schema, { internal: true });

/** An attribute's declared behaviour, looking through the wrappers that hide it. */
export function behaviourOfAttribute(schema: z.ZodType): AttributeBehaviour {
  let s: z.ZodType | undefined = schema;
  while (s) {
    const found = behaviours.get(s);
    if (found) return found;
    const def = s._zod.def as { innerType?: z.ZodType; in?: z.ZodType };
    s = def.innerType ?? def.in;
  }
  return {};
}

/** A type from its folder's definition; keeps the schema's and key's exact types for the API. */
export function defineType<S extends z.ZodObject, const K extends string>(definition: TypeDefinition<S, K>): ResourceType<S, K> {
  if (!(definition.key in definition.schema.shape)) throw new Error(`type ${definition.name}: its key ${definition.key} is not an attribute`);
  const changes: Record<string, ChangeClass> = {};
  const writeOnlyList: string[] = [];
  const sensitiveList: string[] = [];
  const internalList: string[] = [];
  for (const [name, schema] of Object.entries(definition.schema.shape)) {
    const b = behaviourOfAttribute(schema as z.ZodType);
    if (b.change) changes[name] = b.change;
    if (b.writeOnly) writeOnlyList.push(name);
    if (b.sensitive) sensitiveList.push(name);
    if (b.internal) internalList.push(name);
  }
  for (const auto of definition.autoRequires ?? []) {
    if ('attribute' in auto && !(auto.attribute in definition.schema.shape)) {
      throw new Error(`type ${definition.name}: autoRequires names ${auto.attribute}, which is not an attribute`);
    }
  }
  for (const name of writeOnlyList) {
    if (!changes[name]) throw new Error(`type ${definition.name}: write-only ${name} needs a change class (it is compared by hash)`);
  }
  return { ...definition, changes, writeOnly: writeOnlyList, sensitive: sensitiveList, internal: internalList };
}
