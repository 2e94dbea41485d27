/**
 * Errors about a user's input carry a source position and are collected so that one run can
 * report every problem in a site at once. Anything that is a bug in Cairn stays a plain Error.
 */

export interface SourcePos {
  /** Path relative to the site root (or absolute when outside it). */
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based. */
  col: number;
  /** How many characters to underline; 1 when unknown. */
  length?: number;
  /** For text inside a YAML block scalar: the indentation its later lines carry in the file. */
  indent?: number;
}

export interface Diagnostic {
  message: string;
  pos?: SourcePos;
  /** A second sentence that tells the user what to do. */
  hint?: string;
  /** Further positions that explain the error (the other declaration, the rest of a cycle). */
  related?: { message: string; pos?: SourcePos }[];
}

/** Exit codes fixed by DESIGN §11. */
export const ExitCode = {
  ok: 0,
  nodesFailed: 1,
  invalidInput: 2,
  unreachable: 3,
  changesPending: 4,
} as const;

/** One or more problems with the user's input: nothing was run. Exit code 2. */
export class InputError extends Error {
  readonly diagnostics: Diagnostic[];
  readonly exitCode = ExitCode.invalidInput;
  constructor(diagnostics: Diagnostic[]) {
    super(diagnostics.map((d) => d.message).join('; '));
    this.name = 'InputError';
    this.diagnostics = diagnostics;
  }
}

/** Collects diagnostics during a pure step and throws them together at its end. */
export class Diagnostics {
  readonly items: Diagnostic[] = [];

  add(message: string, pos?: SourcePos, extra?: Omit<Diagnostic, 'message' | 'pos'>): void {
    // The same template line rendered for several invocations yields the same error several times.
    const duplicate = this.items.some(
      (d) => d.message === message && samePos(d.pos, pos),
    );
    if (!duplicate) this.items.push({ message, ...(pos ? { pos } : {}), ...extra });
  }

  addAll(diagnostics: readonly Diagnostic[]): void {
    for (const d of diagnostics) this.add(d.message, d.pos, { hint: d.hint, related: d.related });
  }

  /** Runs `fn`, turning an InputError it throws into collected diagnostics. */
  collect<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      if (err instanceof InputError) {
        this.addAll(err.diagnostics);
        return undefined;
      }
      throw err;
    }
  }

  get empty(): boolean {
    return this.items.length === 0;
  }

  throwIfAny(): void {
    if (this.items.length > 0) throw new InputError(this.items);
  }
}

function samePos(a: SourcePos | undefined, b: SourcePos | undefined): boolean {
  if (!a || !b) return a === b;
  return a.file === b.file && a.line === b.line && a.col === b.col;
}

export function inputError(message: string, pos?: SourcePos, hint?: string): InputError {
  return new InputError([{ message, ...(pos ? { pos } : {}), ...(hint ? { hint } : {}) }]);
}

export function formatPos(pos: SourcePos | undefined): string {
  return pos ? `${pos.file}:${pos.line}:${pos.col}` : '<unknown position>';
}
