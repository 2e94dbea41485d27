/**
 * The registry of resource types: every folder of src/resources/ with a type.ts and a
 * providers.ts (scripts/registry.mjs writes types.generated.ts from them). Compile side: the
 * types carry their zod schemas; a run reads the providers' registry (providers.ts) only.
 */
import type { ResourceType } from './type.ts';
import { generatedTypes } from './types.generated.ts';

export type TypeName = keyof typeof generatedTypes;

/** Every type, by name: the order `cairn schema` documents them in. */
export const resourceTypes: readonly ResourceType[] = Object.entries(generatedTypes).map(([folder, type]) => {
  if (type.name !== folder) throw new Error(`src/resources/${folder}/type.ts defines the type ${type.name}: a type's folder is its name`);
  return type as ResourceType;
});

const byName = new Map(resourceTypes.map((t) => [t.name, t]));

export function resourceType(name: string): ResourceType | undefined {
  return byName.get(name);
}

export type { ResourceType, ChangeClass } from './type.ts';
