/** The messages between a build's parent (privileged) and its child (the script, read-only `/`). */
import type { Diagnostic } from '../lib/errors.ts';
import type { ArgumentSpec, BuildContext } from './builder.ts';
import type { ScriptSource } from './profile.ts';

export const STEPS = ['setup', 'create', 'prepare', 'install', 'cleanup'] as const;
export type Step = (typeof STEPS)[number];

/** Privileged requests a script makes through its helpers. */
export type Request =
  | { op: 'mount'; source: string; target: string; type?: string; options?: string[]; bind?: boolean; recursive?: boolean }
  | { op: 'unmount'; target: string }
  | { op: 'loop'; image: string }
  | { op: 'detach'; device: string }
  | { op: 'volume'; size: number; format: 'raw' | 'qcow2'; file?: string; disk?: string }
  | { op: 'rootfs' }
  | { op: 'export'; target: string; facts: Record<string, unknown> }
  | { op: 'file'; file: string }
  | { op: 'cache'; from: string; cache: string; entry: string };

export type ToChild =
  | { t: 'load'; script: ScriptSource; siteDir: string }
  | { t: 'step'; step: Step; ctx: BuildContext }
  | { t: 'reply'; id: number; result?: unknown; error?: string };

export type StepError = { message: string; kind: 'failure' | 'input' | 'crash'; path?: (string | number)[]; stack?: string };

export type FromChild =
  | { t: 'loaded'; arguments?: Record<string, ArgumentSpec>; label: string }
  | { t: 'load-failed'; diagnostics: Diagnostic[] }
  | { t: 'step-done'; step: Step; definition?: string }
  | { t: 'step-failed'; step: Step; error: StepError }
  | { t: 'request'; id: number; request: Request }
  | { t: 'log'; message: string }
  | { t: 'progress'; done: number; total?: number; what?: string };
