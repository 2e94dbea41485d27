/**
 * A small, strict XML reader for the documents the provisioner reads (OVF descriptors): elements,
 * attributes, text, CDATA, comments and processing instructions, with namespaces resolved and a
 * line:col for every element so an error can point at it. No DOCTYPE (OVF never has one, and
 * refusing it rules out entity expansion), no external anything. The project has no XML library,
 * and what OVF needs is this much.
 */
import { inputError, type SourcePos } from '../lib/errors.ts';

export interface XmlElement {
  /** The name as written, with its prefix (`rasd:ResourceType`). */
  qname: string;
  /** The name without its prefix. */
  local: string;
  /** The namespace URI the prefix (or the default namespace) resolves to; '' when none. */
  ns: string;
  /** Attributes by `{uri}local` (or `local` when the attribute has no prefix). */
  attributes: Map<string, { value: string; pos: SourcePos }>;
  children: XmlElement[];
  /** The element's own text (character data directly inside it), entities replaced. */
  text: string;
  pos: SourcePos;
}

const XML_NS = 'http://www.w3.org/XML/1998/namespace';
const NAME = /[A-Za-z_][A-Za-z0-9._:-]*/y;
const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** Parses `text` (named `file` in errors); throws an InputError at the first problem. */
export function parseXml(text: string, file: string): XmlElement {
  let i = 0;
  // Line starts, for positions: computed once, searched by binary search.
  const lineStarts = [0];
  for (let k = 0; k < text.length; k++) if (text.charCodeAt(k) === 10) lineStarts.push(k + 1);
  const posAt = (offset: number): SourcePos => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { file, line: lo + 1, col: offset - lineStarts[lo]! + 1 };
  };
  const fail = (message: string, at = i): never => {
    throw inputError(message, posAt(at));
  };
  const skipSpace = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const name = (): string => {
    NAME.lastIndex = i;
    const m = NAME.exec(text);
    if (!m) fail(`a name expected, found ${JSON.stringify(text.slice(i, i + 10))}`);
    i += m![0].length;
    return m![0];
  };
  const decode = (raw: string, at: number): string =>
    raw.replace(/&(#x[0-9A-Fa-f]+|#[0-9]+|[A-Za-z]+);|&/g, (whole, ref: string | undefined, offset: number) => {
      if (ref === undefined) return fail('a bare "&" (write &amp;)', at + offset);
      if (ref.startsWith('#')) {
        const code = ref.startsWith('#x') ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
        if (code > 0x10ffff) fail(`character reference ${whole} is out of range`, at + offset);
        return String.fromCodePoint(code);
      }
      const v = ENTITIES[ref];
      if (v === undefined) fail(`unknown entity ${whole}`, at + offset);
      return v!;
    });
  /** Skips comments, processing instructions and white space between elements. */
  const misc = (allowDeclaration: boolean) => {
    for (;;) {
      skipSpace();
      if (text.startsWith('<?', i)) {
        const end = text.indexOf('?>', i);
        if (end < 0) fail('an unterminated processing instruction');
        if (text.startsWith('<?xml', i) && /\s/.test(text[i + 5] ?? '') && !allowDeclaration) fail('the XML declaration must come first');
        i = end + 2;
      } else if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i + 4);
        if (end < 0) fail('an unterminated comment');
        i = end + 3;
      } else if (text.startsWith('<!DOCTYPE', i)) {
        fail('a DOCTYPE is not accepted');
      } else return;
      allowDeclaration = false;
    }
  };

  const element = (scope: Map<string, string>): XmlElement => {
    const start = i;
    i++; // '<'
    const qname = name();
    const raw: { name: string; value: string; at: number }[] = [];
    for (;;) {
      const before = i;
      skipSpace();
      if (text.startsWith('/>', i) || text[i] === '>') break;
      if (i === before) fail('white space expected between attributes');
      const at = i;
      const attr = name();
      skipSpace();
      if (text[i] !== '=') fail(`"=" expected after attribute ${attr}`);
      i++;
      skipSpace();
      const quote = text[i];
      if (quote !== '"' && quote !== "'") fail(`attribute ${attr}: a quoted value expected`);
      const end = text.indexOf(quote!, i + 1);
      if (end < 0) fail(`attribute ${attr}: an unterminated value`);
      const value = text.slice(i + 1, end);
      if (value.includes('<')) fail(`attribute ${attr}: "<" in a value`, i + 1 + value.indexOf('<'));
      if (raw.some((a) => a.name === attr)) fail(`attribute ${attr} given twice`, at);
      raw.push({ name: attr, value: decode(value, i + 1), at });
      i = end + 1;
    }
    // Namespace declarations first: they apply to the element's own name and attributes.
    let own = scope;
    for (const a of raw) {
      if (a.name === 'xmlns' || a.name.startsWith('xmlns:')) {
        if (own === scope) own = new Map(scope);
        own.set(a.name === 'xmlns' ? '' : a.name.slice(6), a.value);
      }
    }
    const resolve = (qualified: string, isAttribute: boolean, at: number): { ns: string; local: string } => {
      const colon = qualified.indexOf(':');
      if (colon < 0) return { ns: isAttribute ? '' : (own.get('') ?? ''), local: qualified };
      const prefix = qualified.slice(0, colon);
      const uri = prefix === 'xml' ? XML_NS : own.get(prefix);
      if (uri === undefined) fail(`namespace prefix "${prefix}" is not declared`, at);
      return { ns: uri!, local: qualified.slice(colon + 1) };
    };
    const { ns, local } = resolve(qname, false, start + 1);
    const attributes = new Map<string, { value: string; pos: SourcePos }>();
    for (const a of raw) {
      if (a.name === 'xmlns' || a.name.startsWith('xmlns:')) continue;
      const r = resolve(a.name, true, a.at);
      attributes.set(r.ns ? `{${r.ns}}${r.local}` : r.local, { value: a.value, pos: posAt(a.at) });
    }
    const el: XmlElement = { qname, local, ns, attributes, children: [], text: '', pos: posAt(start) };
    if (text.startsWith('/>', i)) {
      i += 2;
      return el;
    }
    i++; // '>'
    let content = '';
    for (;;) {
      if (i >= text.length) fail(`<${qname}> is not closed`, start);
      const lt = text.indexOf('<', i);
      if (lt < 0) fail(`<${qname}> is not closed`, start);
      if (lt > i) {
        const chunk = text.slice(i, lt);
        if (chunk.includes(']]>')) fail('"]]>" in text', i + chunk.indexOf(']]>'));
        content += decode(chunk, i);
        i = lt;
      }
      if (text.startsWith('</', i)) {
        const at = i;
        i += 2;
        const closing = name();
        skipSpace();
        if (text[i] !== '>') fail(`">" expected to end </${closing}>`);
        i++;
        if (closing !== qname) fail(`</${closing}> closes <${qname}> (opened at line ${el.pos.line})`, at);
        el.text = content;
        return el;
      }
      if (text.startsWith('<!--', i)) {
        const end = text.indexOf('-->', i + 4);
        if (end < 0) fail('an unterminated comment');
        i = end + 3;
      } else if (text.startsWith('<![CDATA[', i)) {
        const end = text.indexOf(']]>', i + 9);
        if (end < 0) fail('an unterminated CDATA section');
        content += text.slice(i + 9, end);
        i = end + 3;
      } else if (text.startsWith('<?', i)) {
        const end = text.indexOf('?>', i);
        if (end < 0) fail('an unterminated processing instruction');
        i = end + 2;
      } else if (text.startsWith('<!', i)) {
        fail('a declaration is not accepted inside an element');
      } else {
        el.children.push(element(own));
      }
    }
  };

  if (text.charCodeAt(0) === 0xfeff) i = 1;
  misc(true);
  if (text[i] !== '<') fail('the document has no root element');
  const root = element(new Map());
  misc(false);
  if (i < text.length) fail('content after the root element');
  return root;
}

/** The element's children named `local` in namespace `ns`. */
export function childrenOf(el: XmlElement, ns: string, local: string): XmlElement[] {
  return el.children.filter((c) => c.ns === ns && c.local === local);
}

export function childOf(el: XmlElement, ns: string, local: string): XmlElement | undefined {
  return el.children.find((c) => c.ns === ns && c.local === local);
}

export function attributeOf(el: XmlElement, ns: string, local: string): { value: string; pos: SourcePos } | undefined {
  return el.attributes.get(ns ? `{${ns}}${local}` : local);
}
