/**
 * What cancels a run: an AbortSignal, or a holder that makes its AbortSignal only when something
 * first asks for it (the CLI's Ctrl-C, cli/interrupt.ts). The first AbortController a process
 * makes loads Node's module of them (internal/abort_controller): some 6 million instructions,
 * about a tenth of what a converged one-resource run spends beyond `node -e 0`. A run that nobody
 * interrupts never needs one: the engine and the run lock only ask whether the run was cancelled,
 * which `aborted` answers without it, and a provider gets the signal only if it reads ctx.signal.
 */
export interface LazySignal {
  readonly aborted: boolean;
  /** The signal, made now if nothing asked for it before. */
  readonly signal: AbortSignal;
}

export type RunSignal = AbortSignal | LazySignal;

/** The AbortSignal behind `s` (a LazySignal's made now). */
export function abortSignalOf(s: RunSignal): AbortSignal {
  // An AbortSignal has no `signal` of its own.
  return 'signal' in s ? s.signal : s;
}

/** An AbortController made on first use: by the first ask for its signal, or by abort(). */
export class LazyAbort implements LazySignal {
  private controller?: AbortController;

  get aborted(): boolean {
    return this.controller?.signal.aborted ?? false;
  }

  get signal(): AbortSignal {
    return (this.controller ??= new AbortController()).signal;
  }

  abort(): void {
    (this.controller ??= new AbortController()).abort();
  }
}
