/** One raw part map (`- file: /etc/motd\n  content: …`) into a validated PartInvocation. */
import { z } from 'zod';
import { didYouMean, nearest } from '../lib/did-you-mean.ts';
import type { Diagnostics, SourcePos } from '../lib/errors.ts';
import { keyPosOf, posOf, setPos } from '../lib/positions.ts';
import { TAG_NAME } from '../lib/tag-name.ts';
import { resourceType, resourceTypeNames } from '../resources/index.ts';
import { providersOf } from '../resources/providers.ts';
import { identityOf, ResolveError, type ResolveContext } from '../resources/type.ts';
import { validate } from '../site/validate.ts';
import { attributesRevealing } from './secrets.ts';
import { REQUISITE_KINDS, type PartInvocation, type Requisite } from './staterun.ts';

const REF_HELP = 'expected a reference (type:key, a part id or a state name) or a list of them';
const refList = z.union([z.string().min(1), z.array(z.string().min(1), { error: REF_HELP })], { error: REF_HELP });

export const metaSchema = z.strictObject({
  id: z.string().min(1).optional().describe('a name other parts can reference'),
  require: refList.optional().describe('run after these; skipped if one of them fails'),
  before: refList.optional().describe('the inverse of require'),
  notify: refList.optional().describe('trigger these when this part changes'),
  listen: refList.optional().describe('the inverse of notify'),
  onchanges: refList.optional().describe('run only if one of these changed'),
  onfail: refList.optional().describe('run only if one of these failed'),
  noop: z.boolean().optional().describe('plan but never apply'),
  provider: z.string().optional().describe('force a provider'),
  allow_reload: z.boolean().optional().describe('allow changes that need a restart (default true)'),
  allow_rebuild: z.boolean().optional().describe('allow changes that destroy and recreate'),
  tags: z.array(z.string().regex(TAG_NAME, "a tag is letters, digits, '_', '-' and '.'")).optional().describe('run with --tags naming one of these; skip with --skip-tags'),
});
export const META_NAMES = Object.keys(metaSchema.shape);

export interface PartContext {
  index: number;
  /** The plaintext of every `!secret` the target's vars use: an attribute showing one is sensitive. */
  secrets?: ReadonlySet<string>;
  /** Where the part's state is declared, when the part itself has no position. */
  fallback?: SourcePos;
  resolve: ResolveContext;
}

export function parsePart(raw: unknown, ctx: PartContext, d: Diagnostics): PartInvocation | undefined {
  const pos = posOf(raw) ?? ctx.fallback;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    d.add('a part is a map whose first key names a resource type, e.g. `- file: /etc/motd`', pos);
    return undefined;
  }
  const map = raw as Record<string, unknown>;
  // The type is the first key when it names one: `file: /x` then `group: staff` is a file with a
  // group, not two resources. Otherwise the one key that names a type, wherever it stands.
  const keys = Object.keys(map);
  const typeKeys = keys[0] !== undefined && resourceType(keys[0]) ? [keys[0]] : keys.filter((k) => resourceType(k));
  if (typeKeys.length === 0) {
    const guess = Object.keys(map).find((k) => !META_NAMES.includes(k) && nearest(k, resourceTypeNames));
    if (guess) {
      d.add(`unknown resource type '${guess}' (did you mean '${nearest(guess, resourceTypeNames)}'?)`, keyPosOf(map, guess), {
        hint: `types: ${resourceTypeNames.join(', ')}`,
      });
    } else {
      d.add(`part names no resource type (keys: ${Object.keys(map).join(', ') || 'none'})`, pos, { hint: `types: ${resourceTypeNames.join(', ')}` });
    }
    return undefined;
  }
  if (typeKeys.length > 1) {
    d.add(`part names more than one resource type: ${typeKeys.join(', ')}`, keyPosOf(map, typeKeys[1]!), {
      hint: 'each part declares one resource; split it into several parts',
    });
    return undefined;
  }
  const typeName = typeKeys[0]!;
  const type = resourceType(typeName)!;
  const keyValue = map[typeName];
  if (typeof keyValue !== 'string' && typeof keyValue !== 'number') {
    d.add(`${typeName}: the value after '${typeName}:' is its ${type.key} and must be a string`, posOf(map, typeName));
    return undefined;
  }

  const attrs: Record<string, unknown> = { [type.key]: String(keyValue) };
  const metaRaw: Record<string, unknown> = {};
  // What a site may write: the type's attributes but its key and the ones its resolve() fills in.
  const writable = Object.keys(type.schema.shape).filter((s) => s !== type.key && !type.internal.includes(s));
  let ok = true;
  for (const [k, v] of Object.entries(map)) {
    if (k === typeName) continue;
    if (META_NAMES.includes(k)) metaRaw[k] = v;
    else if (writable.includes(k)) attrs[k] = v;
    else if (resourceType(k)) {
      d.add(`${typeName} ${String(keyValue)}: '${k}' is not an attribute of ${typeName}`, keyPosOf(map, k), {
        hint: `a part declares one resource: start another part with \`- ${k}: …\``,
      });
      ok = false;
    } else {
      const candidates = [...writable, ...META_NAMES];
      const near = nearest(k, candidates);
      d.add(`${typeName} ${String(keyValue)}: unknown attribute '${k}'${near ? ` (did you mean '${near}'?)` : ''}`, keyPosOf(map, k), {
        hint: `${typeName} takes: ${writable.join(', ')}`,
      });
      ok = false;
    }
  }
  const prefix = `${typeName} ${String(keyValue)}: `;
  const meta = validate(metaSchema, withPositions(metaRaw, map, typeName, type.key), d, { prefix, fallback: pos });
  const valid = validate(type.schema, withPositions(attrs, map, typeName, type.key), d, { prefix, what: 'attribute', fallback: pos });
  if (!ok || !meta || !valid) return undefined;
  // A provider that does not exist is the site's mistake, known now: not a node failing mid-run.
  if (meta.provider !== undefined) {
    const names = providersOf(typeName).map((p) => p.name);
    if (!names.includes(meta.provider)) {
      d.add(`${prefix}no provider '${meta.provider}' for ${typeName}${didYouMean(meta.provider, names)}`, posOf(map, 'provider') ?? pos,
        { hint: names.length ? `providers of ${typeName}: ${names.join(', ')}` : `${typeName} has no providers` });
      return undefined;
    }
  }

  let resolved: Record<string, unknown> = valid as Record<string, unknown>;
  if (type.resolve) {
    try {
      resolved = type.resolve(resolved, ctx.resolve);
    } catch (err) {
      if (!(err instanceof ResolveError)) throw err;
      // An error inside a template has its own position; a missing file is the attribute's fault.
      const attrPos = posOf(map, err.attribute) ?? pos;
      for (const diag of err.cause.diagnostics) {
        const related = diag.pos ? [...(diag.related ?? []), { message: `rendered for ${typeName} ${String(keyValue)}`, pos: attrPos }] : diag.related;
        // Without a position of its own the error is about the attribute: say whose it is.
        d.add(diag.pos ? diag.message : `${prefix}${diag.message}`, diag.pos ?? attrPos, { hint: diag.hint, related });
      }
      return undefined;
    }
  }

  const requisites: Requisite[] = [];
  for (const kind of REQUISITE_KINDS) {
    const value = metaRaw[kind];
    if (value === undefined) continue;
    const list = Array.isArray(value) ? value : [value];
    list.forEach((ref, i) => {
      requisites.push({ kind, ref: String(ref), pos: (Array.isArray(value) ? posOf(value, i) : posOf(map, kind)) ?? pos });
    });
  }
  // A value rendered from a secret is as secret as it (DESIGN §4a, §5.13); so are the attributes
  // a part's `sensitive: true` hides.
  const sensitive = [...new Set([
    ...attributesRevealing(resolved, ctx.secrets ?? new Set()),
    ...(resolved.sensitive === true ? type.hiddenWhenSensitive ?? [] : []),
  ])].filter((attr) => resolved[attr] !== undefined);
  const identity = identityOf(type, resolved, { sensitive, ...(meta.id ? { id: meta.id } : {}) });
  if (typeof identity !== 'string') {
    d.add(`${prefix}${identity.error}`, pos);
    return undefined;
  }
  return {
    index: ctx.index,
    type: typeName,
    ref: `${typeName}:${identity}`,
    attributes: resolved,
    meta: {
      ...(meta.id ? { id: meta.id } : {}),
      ...(sensitive.length ? { sensitive } : {}),
      noop: meta.noop ?? false,
      ...(meta.provider ? { provider: meta.provider } : {}),
      allow_reload: meta.allow_reload ?? true,
      allow_rebuild: meta.allow_rebuild ?? !type.stateful,
      tags: meta.tags ?? [],
    },
    requisites,
    pos,
  };
}

/** Gives `attrs` the positions its values have in the part map, so zod issues point at them. */
function withPositions(attrs: Record<string, unknown>, from: Record<string, unknown>, typeName: string, keyAttr: string): Record<string, unknown> {
  const members: Record<string, SourcePos> = {};
  for (const k of Object.keys(attrs)) {
    const p = posOf(from, k === keyAttr ? typeName : k);
    if (p) members[k] = p;
  }
  setPos(attrs, posOf(from), members);
  return attrs;
}
