/** The built-in builder scripts a profile names by `script:` (DESIGN §10), loaded when used. */
import type { Builder } from './builder.ts';

/** A builder script's class: what a script module exports as default. */
export type BuilderClass = (abstract new (...args: ConstructorParameters<typeof Builder>) => Builder) & typeof Builder;

export const BUILTIN_SCRIPTS: Record<string, () => Promise<{ default: BuilderClass }>> = {
  noop: () => import('./builtin/noop.ts'),
};
