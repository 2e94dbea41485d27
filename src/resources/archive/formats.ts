/**
 * Archive formats and how each is unpacked, shared by the type (compile side: which format a
 * source's name says) and the provider (run side: the command). No schema here.
 */

export const ARCHIVE_FORMATS = ['tar.gz', 'tgz', 'tar.xz', 'tar.bz2', 'tar', 'zip'] as const;
export type ArchiveFormat = (typeof ARCHIVE_FORMATS)[number];

/** A source the target downloads itself; anything else is a site file. */
export function isDownload(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/** The format a source's name ends with (a URL's query and fragment aside), or undefined. */
export function formatOf(source: string): ArchiveFormat | undefined {
  const name = (isDownload(source) ? source.replace(/[?#].*$/, '') : source).toLowerCase();
  // Longest first: `.tar.gz` before `.tar`.
  const byLength = [...ARCHIVE_FORMATS].sort((a, b) => b.length - a.length);
  return byLength.find((f) => name.endsWith(`.${f}`));
}

/**
 * The command that unpacks `file` into the folder `into`. `-o` (do not restore the archive's
 * owners) means the same to GNU tar, bsdtar and BusyBox tar when extracting; the unpacked tree
 * belongs to whoever runs it, then to `owner`/`group`.
 */
export function unpackCommand(format: ArchiveFormat, file: string, into: string, strip: number): string[] {
  if (format === 'zip') return ['unzip', '-q', '-o', file, '-d', into];
  const compression: Record<Exclude<ArchiveFormat, 'zip'>, string[]> = { 'tar.gz': ['-z'], tgz: ['-z'], 'tar.xz': ['-J'], 'tar.bz2': ['-j'], tar: [] };
  return ['tar', '-x', ...compression[format], '-o', '-f', file, '-C', into, ...(strip > 0 ? [`--strip-components=${strip}`] : [])];
}
