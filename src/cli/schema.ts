/** `cairn schema`: JSON Schema of state files (and of cairn.yaml), generated from the zod schemas. */
import { z } from 'zod';
import { configSchema, inventorySchema } from '../catalog/schema.ts';
import { metaSchema } from '../catalog/part.ts';
import { allResourceTypes } from '../resources/index.ts';

function partSchema() {
  const variants = allResourceTypes().map((type) => {
    const attributes = Object.fromEntries(
      Object.entries(type.schema.shape).filter(([k]) => k !== type.key && !type.internal.includes(k)),
    );
    return z
      .strictObject({
        [type.name]: z.string().describe(`${type.description} The value is its ${type.key}.`),
        ...attributes,
        ...metaSchema.shape,
      })
      .meta({ id: `part-${type.name}`, description: `${type.name}: ${type.description}` });
  });
  return z.union(variants as unknown as [z.ZodType, z.ZodType, ...z.ZodType[]]).meta({ id: 'part' });
}

export function stateFileSchema() {
  const part = partSchema();
  const state = z.union([
    z.array(part),
    z.strictObject({
      params: z.record(z.string(), z.unknown()).optional().describe('parameters and their defaults; ~ (null) marks a required one'),
      parts: z.array(part).optional(),
      lazy: z.boolean().optional().describe('a handler: runs only when notified'),
      defer: z.boolean().optional().describe('a lazy state that runs once at the end of the run'),
      include: z.array(z.string()).optional().describe('a meta state: invokes these states'),
      tags: z.array(z.string()).optional().describe('every part of this state, and of the states it includes, carries these'),
    }),
  ]);
  return z.record(z.string(), state).describe('A Cairn state file: state names mapped to states.');
}

export function jsonSchema(which: 'state' | 'site' | 'inventory'): unknown {
  const schema = which === 'state' ? stateFileSchema() : which === 'site' ? configSchema : inventorySchema;
  return z.toJSONSchema(schema, { unrepresentable: 'any', io: 'input' });
}
