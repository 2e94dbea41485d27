/**
 * Reads a site folder (DESIGN §3): cairn.yaml plus the conventional folders, into documents with
 * positions and state definitions. Nothing is interpreted here beyond what each file format needs.
 */
import { existsSync } from 'node:fs';
import { basename, extname, join, relative, resolve } from 'node:path';
import { inputError, type Diagnostics } from '../lib/errors.ts';
import { LineIndex, posOf } from '../lib/positions.ts';
import { inlineStates, jsonStateFile, yamlStateFile, type StateDef } from './states.ts';
import { SiteFiles } from './site-files.ts';
import { parseYaml } from './yaml.ts';

export interface SiteDoc {
  /** Site-relative path. */
  file: string;
  doc: unknown;
}

export interface ComponentDocs {
  name: string;
  /** Site-relative folder of the component. */
  dir: string;
  manifest?: SiteDoc;
}

export interface SiteDocs {
  /** Absolute path of the site folder. */
  root: string;
  /** Every file read, by site-relative path, so errors can quote the offending line. */
  sources: Map<string, string>;
  config: SiteDoc;
  inventory?: SiteDoc;
  roles: SiteDoc[];
  states: StateDef[];
  components: ComponentDocs[];
  vars: { all: SiteDoc[]; groups: Map<string, SiteDoc>; targets: Map<string, SiteDoc> };
  os: SiteDoc[];
  /**
   * Kinds of name whose list is incomplete because a file declaring them failed to load: an
   * "unknown state" about such a name would only repeat the real error.
   */
  incomplete: Set<NameKind>;
}

export type NameKind = 'states' | 'roles' | 'targets' | 'groups';

const STATE_EXTENSIONS = ['.yaml', '.yml', '.json', '.ts', '.mts'];

export class SiteReader {
  readonly files: SiteFiles;

  constructor(readonly root: string, readonly d: Diagnostics, readonly sources: Map<string, string>) {
    this.files = new SiteFiles(root);
  }

  rel(abs: string): string {
    return relative(this.root, abs) || basename(abs);
  }

  /** A site file's text, checked (site-files.ts); undefined, with the problem collected, if it is not one. */
  readText(abs: string): string | undefined {
    const text = this.d.collect(() => this.files.read(abs).toString('utf8'));
    if (text === undefined) return undefined;
    this.sources.set(this.rel(abs), text);
    return this.d.collect(() => {
      refuseBareCarriageReturns(text, this.rel(abs));
      return text;
    });
  }

  /** A plain YAML or JSON document (no templating). */
  readYaml(abs: string): SiteDoc {
    const file = this.rel(abs);
    const text = this.readText(abs);
    if (text === undefined) return { file, doc: null };
    const lines = new LineIndex(text);
    const doc = this.d.collect(() => parseYaml(text, (offset, length) => ({ file, ...lines.lineCol(offset), length }), labelFor(file)));
    return { file, doc: doc ?? null };
  }

  async readStateFile(abs: string, component?: string): Promise<StateDef[]> {
    const ext = extname(abs);
    const text = this.readText(abs);
    if (text === undefined) return [];
    if (ext === '.ts' || ext === '.mts') {
      const { typescriptStateFile } = await import('./typescript.ts');
      return typescriptStateFile(abs, this.root, this.d, component);
    }
    const file = this.rel(abs);
    return ext === '.json' ? jsonStateFile(text, file, this.d, component) : yamlStateFile(text, file, this.d, component);
  }
}

/**
 * Line ends are LF or CRLF. A carriage return on its own ends a line for YAML but not for the
 * positions Cairn reports or the templates' line handling: a file saved with classic-Mac line
 * ends would be misread and mislocated, so it is refused where the first one is.
 */
function refuseBareCarriageReturns(text: string, file: string): void {
  for (let at = text.indexOf('\r'); at >= 0; at = text.indexOf('\r', at + 1)) {
    if (text[at + 1] === '\n') continue;
    const { line, col } = new LineIndex(text).lineCol(at);
    throw inputError('a carriage return (CR) that does not end a CRLF line end', { file, line, col }, 'save the file with LF (or CRLF) line ends');
  }
}

export function labelFor(file: string): string {
  return extname(file) === '.json' ? 'JSON' : 'YAML';
}

function inlineStateMap(doc: SiteDoc | undefined): Record<string, unknown> | undefined {
  const states = (doc?.doc as Record<string, unknown> | null | undefined)?.states;
  return states && typeof states === 'object' && !Array.isArray(states) ? (states as Record<string, unknown>) : undefined;
}

/** `sources` receives every file read, also when loading fails, so errors can quote lines. */
export async function loadSite(siteDir: string, d: Diagnostics, sources = new Map<string, string>()): Promise<SiteDocs> {
  const root = resolve(siteDir);
  const configPath = join(root, 'cairn.yaml');
  if (!existsSync(root) || !new SiteFiles(root).exists(configPath)) {
    throw inputError(`no cairn.yaml in ${root}`, undefined, 'point --site at a folder with a cairn.yaml, or create one');
  }
  const r = new SiteReader(root, d, sources);
  const incomplete = new Set<NameKind>();
  const failing = async <T>(kinds: NameKind[], load: () => T | Promise<T>): Promise<T> => {
    const before = d.items.length;
    const result = await load();
    if (d.items.length > before) for (const k of kinds) incomplete.add(k);
    return result;
  };
  const config = await failing(['states', 'roles', 'targets', 'groups'], () => r.readYaml(configPath));
  const exists = (abs: string) => r.files.exists(abs);
  const listFiles = (dir: string, extensions: readonly string[]) => d.collect(() => r.files.list(dir, extensions)) ?? [];
  const inventoryPath = ['inventory.yaml', 'inventory.yml'].map((f) => join(root, f)).find(exists);
  const inventory = inventoryPath ? await failing(['targets', 'groups'], () => r.readYaml(inventoryPath)) : undefined;

  const states: StateDef[] = [];
  const inline = inlineStateMap(config);
  if (inline) states.push(...inlineStates(inline, config.file, d));
  for (const f of await failing(['states'], () => listFiles(join(root, 'states'), STATE_EXTENSIONS))) states.push(...await failing(['states'], () => r.readStateFile(f)));

  const components: ComponentDocs[] = [];
  const componentsDir = join(root, 'components');
  for (const dir of await failing(['states'], () => d.collect(() => r.files.folders(componentsDir)) ?? [])) {
    const name = basename(dir);
    const manifestPath = ['component.yaml', 'component.yml'].map((f) => join(dir, f)).find(exists);
    const manifest = manifestPath ? await failing(['states'], () => r.readYaml(manifestPath)) : undefined;
    components.push({ name, dir: r.rel(dir), ...(manifest ? { manifest } : {}) });
    const own = inlineStateMap(manifest);
    if (own && manifest) states.push(...inlineStates(own, manifest.file, d, name));
    for (const f of await failing(['states'], () => listFiles(join(dir, 'states'), STATE_EXTENSIONS))) states.push(...await failing(['states'], () => r.readStateFile(f, name)));
  }

  const yamlIn = (dir: string) => listFiles(join(root, dir), ['.yaml', '.yml', '.json']).map((f) => r.readYaml(f));
  /** Variable and OS-table files hold one map; anything else would be ignored silently. */
  const mapsIn = (docs: SiteDoc[], what: string) => docs.filter((doc) => {
    if (doc.doc === null || (typeof doc.doc === 'object' && !Array.isArray(doc.doc))) return true;
    d.add(`${what} must be a map of names to values`, posOf(doc.doc) ?? { file: doc.file, line: 1, col: 1 });
    return false;
  });
  const byStem = (docs: SiteDoc[]) => new Map(docs.map((doc) => [basename(doc.file, extname(doc.file)), doc]));
  const allVars = mapsIn(['vars/all.yaml', 'vars/all.yml'].map((f) => join(root, f)).filter(exists).map((f) => r.readYaml(f)), 'a vars file');

  const roles = await failing(['roles'], () => yamlIn('roles'));
  return {
    root,
    incomplete,
    sources: r.sources,
    config,
    ...(inventory ? { inventory } : {}),
    roles,
    states,
    components,
    vars: {
      all: allVars,
      groups: byStem(mapsIn(yamlIn('vars/groups'), 'a vars file')),
      targets: byStem(mapsIn(yamlIn('vars/targets'), 'a vars file')),
    },
    os: mapsIn(yamlIn('os'), 'an OS table file'),
  };
}
