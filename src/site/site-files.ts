/**
 * What may be a site file, checked before anything reads it (README "Limits"): a regular file of
 * at most MAX_SITE_FILE_BYTES that lies inside the site folder once symbolic links are followed.
 * A link to another file of the site is followed, wherever it appears (a listed folder, a fixed
 * name like `vars/all.yaml`, a `template:` or `source:`); a link leading out of the site, a
 * dangling one, a folder, a FIFO, a socket or a device where a file belongs is an input error.
 * Reading a FIFO would block forever, and a file outside the site would make the site's meaning
 * depend on the machine that compiles it.
 */
import { lstatSync, readdirSync, readFileSync, realpathSync, statSync, type Stats } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { inputError, type SourcePos } from '../lib/errors.ts';

/** The largest site file read: far above any hand-written file, far below what exhausts memory. */
export const MAX_SITE_FILE_BYTES = 16 * 1024 * 1024;

const sizeText = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(bytes < 1024 * 1024 ? 2 : 0)} MiB`;

function kindOf(s: Stats): string {
  if (s.isDirectory()) return 'a folder';
  if (s.isFIFO()) return 'a FIFO (named pipe)';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

export class SiteFiles {
  /** The site folder with every link resolved, to tell inside from outside; worked out on first use. */
  private realRootCache: string | undefined;

  /**
   * `pointAtFile`: errors point at the file itself (line 1); false for files named by an
   * attribute (`template:`, `source:`), whose errors the attribute's position places.
   */
  constructor(readonly root: string, private readonly pointAtFile = true) {}

  private get realRoot(): string {
    this.realRootCache ??= realpathSync(this.root);
    return this.realRootCache;
  }

  private at(abs: string): SourcePos | undefined {
    return this.pointAtFile ? { file: this.rel(abs), line: 1, col: 1 } : undefined;
  }

  private rel(abs: string): string {
    return relative(this.root, abs) || abs;
  }

  private inside(real: string): boolean {
    return real === this.realRoot || real.startsWith(this.realRoot + sep);
  }

  /** True when something (a file, a folder, a link, dangling or not) has this name. */
  exists(abs: string): boolean {
    try {
      lstatSync(abs);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Where `abs` really is, once links are followed, and what is there; an input error (at the
   * file) when that is outside the site or nothing. `what` names the path for messages.
   */
  private follow(abs: string, what = this.rel(abs)): { real: string; stats: Stats } {
    const at = this.at(abs);
    let real: string;
    try {
      real = realpathSync(abs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw inputError(`${what} is a symbolic link to nothing (it dangles)`, at, 'point the link at a file inside the site, or remove it');
      if (code === 'ELOOP') throw inputError(`${what} is a symbolic link that loops`, at);
      throw inputError(`cannot read ${what}: ${(err as Error).message}`, at);
    }
    if (!this.inside(real)) {
      const how = lstatSync(abs).isSymbolicLink() ? 'is a symbolic link to' : 'leads to';
      throw inputError(`${what} ${how} ${real}, outside the site folder`, at,
        'a site file must lie inside the site: copy the file into the site, or link to a file inside it');
    }
    return { real, stats: statSync(real) };
  }

  /** `abs` checked as a file to read; returns the path to read. */
  checkFile(abs: string, what = this.rel(abs)): string {
    const at = this.at(abs);
    const { real, stats } = this.follow(abs, what);
    if (!stats.isFile()) {
      throw inputError(`${what} is ${kindOf(stats)}, not a file`, at, stats.isDirectory() ? undefined : 'a site file must be a regular file (reading a FIFO or a device would wait forever)');
    }
    if (stats.size > MAX_SITE_FILE_BYTES) {
      throw inputError(`${what} is ${sizeText(stats.size)}, over the ${sizeText(MAX_SITE_FILE_BYTES)} limit for a site file`, at,
        'split it, or keep large content out of the site files (a file resource can copy it from elsewhere on the target)');
    }
    return real;
  }

  /** The bytes of a checked site file. */
  read(abs: string, what?: string): Buffer {
    const path = this.checkFile(abs, what);
    try {
      return readFileSync(path);
    } catch (err) {
      throw inputError(`cannot read ${what ?? this.rel(abs)}: ${(err as Error).message}`, this.at(abs));
    }
  }

  /** True when `abs` is a folder, or a link to a folder inside the site. */
  isFolder(abs: string): boolean {
    if (!this.exists(abs)) return false;
    return this.follow(abs).stats.isDirectory();
  }

  /**
   * The entries of `dir` with one of `extensions`, sorted, whatever their kind: reading one
   * checks it, so a folder or a FIFO named like a state file is reported, not skipped.
   */
  list(dir: string, extensions: readonly string[]): string[] {
    if (!this.isFolder(dir)) return [];
    // `.#name` is an editor's lock (Emacs: a dangling link), not a file of the site.
    return readdirSync(dir).filter((name) => extensions.includes(extname(name)) && !name.startsWith('.#')).map((name) => join(dir, name)).sort();
  }

  /** The sub-folders of `dir` (links to folders inside the site included), in name order. */
  folders(dir: string): string[] {
    if (!this.isFolder(dir)) return [];
    return readdirSync(dir).sort((a, b) => a.localeCompare(b)).map((name) => join(dir, name)).filter((abs) => this.isFolder(abs));
  }
}
