/**
 * The registry of resource types: every folder of src/resources/ with a type.ts and a
 * providers.ts (scripts/registry.mjs writes types.generated.ts from them). Compile side: the
 * types carry their zod schemas; a run reads the providers' registry (providers.ts) only.
 *
 * A type is looked up by name, so that the bundle (scripts/build.mjs) sets up only the types a
 * compile meets: building the zod schemas of all 22 cost a one-change compile about 15 ms.
 */
import type { ResourceType } from './type.ts';
import { generatedTypes } from './types.generated.ts';

export type TypeName = keyof typeof generatedTypes;

/** Every type's name, in the order `cairn schema` documents them (reading them sets up no type). */
export const resourceTypeNames: readonly string[] = Object.keys(generatedTypes);

const checked = new Map<string, ResourceType>();

export function resourceType(name: string): ResourceType | undefined {
  const known = checked.get(name);
  if (known) return known;
  if (!Object.hasOwn(generatedTypes, name)) return undefined;
  const type = generatedTypes[name as TypeName] as ResourceType;
  if (type.name !== name) throw new Error(`src/resources/${name}/type.ts defines the type ${type.name}: a type's folder is its name`);
  checked.set(name, type);
  return type;
}

/** Every type, in the order of resourceTypeNames (sets them all up). */
export function allResourceTypes(): ResourceType[] {
  return resourceTypeNames.map((name) => resourceType(name)!);
}

export type { ResourceType, ChangeClass } from './type.ts';
