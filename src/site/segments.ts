/**
 * A rendered state's parts list cut into the text of each part, without parsing it, so that the
 * incremental compile (catalog/compile.ts) parses only the parts whose text changed since the
 * last compile. A generated state renders hundreds of parts of which a changed variable touches
 * one; parsing them all again was most of the cost of such a compile.
 *
 * The cut is by lines, and only where YAML's block structure makes it exact: the list's items
 * start at lines holding `-` at the list's indentation, and a line indented no more than that
 * which is not such a start ends the list. Whatever could make an item's value depend on text
 * outside its own lines is refused here (directives, document markers, a tab in the indentation
 * of such a line) or by the caller after parsing (anchors and aliases, errors, a count of items
 * that is not the count of cuts): then the text is parsed whole, as without this.
 */

/** Where a rendered text's parts list is. */
export interface ItemCuts {
  /** The list's indentation (column of its `-`, 0-based). */
  indent: number;
  /** Offset of each item's first line; an item runs to the next one's start, the last to `end`. */
  starts: number[];
  /** Offset of the line that ends the list (the text's length if none). */
  end: number;
}

const SPACE = 0x20;

/** Directives (`%YAML`, `%TAG`) and document markers change how every item reads, or split the text into documents. */
const DOCUMENT_LEVEL = /^(?:%|---|\.\.\.)/m;

/** The first line that starts a block sequence's item: `-` after spaces only, then a space or the line's end. */
const FIRST_ITEM = /^( *)-(?:[ \r\n]|$)/m;

/**
 * The items of the first block sequence of `text`, cut at their lines; undefined when the text
 * cannot be cut this way. The caller checks that this sequence is the state's parts list.
 */
export function cutItems(text: string): ItemCuts | undefined {
  if (DOCUMENT_LEVEL.test(text)) return undefined;
  const first = FIRST_ITEM.exec(text);
  if (!first) return undefined;
  const indent = first[1]!.length;
  const starts = [first.index];
  const length = text.length;
  let line = text.indexOf('\n', first.index);
  while (line >= 0 && line + 1 < length) {
    const at = line + 1;
    line = text.indexOf('\n', at);
    let i = at;
    while (text.charCodeAt(i) === SPACE) i++;
    const c = text[i];
    // Blank lines and comments belong to the item before them, as they do to nothing in YAML.
    if (c === '\n' || c === '#' || (c === '\r' && (i + 1 === length || text[i + 1] === '\n')) || i === length) continue;
    if (i - at > indent) continue;
    // A tab where indentation ends: YAML's rules for it are not worth reproducing here.
    if (c === '\t') return undefined;
    if (i - at === indent && c === '-') {
      const next = text[i + 1];
      if (next === undefined || next === ' ' || next === '\n' || next === '\r') {
        starts.push(at);
        continue;
      }
    }
    return { indent, starts, end: at };
  }
  return { indent, starts, end: length };
}
