/**
 * A `!secret` value as parsed (DESIGN §4a): the age ciphertext and where it was written. It lives
 * in lib/ because the parser (site/) makes it and the compiler (catalog/) opens it. Decrypting is
 * asynchronous and compiling is not, so catalog/secrets.ts opens every value before a compile
 * and leaves the outcome here for the compile to use or report.
 */
import type { SourcePos } from './errors.ts';

export class SecretValue {
  /** The plaintext, once decrypted. */
  plain?: string;
  /** Why it could not be decrypted. */
  problem?: string;

  constructor(readonly ciphertext: string, readonly pos?: SourcePos) {}

  /** Never the plaintext: a value printed by mistake shows what it is. */
  toString(): string {
    return '(sensitive)';
  }

  toJSON(): string {
    return '(sensitive)';
  }
}

export function isSecretValue(v: unknown): v is SecretValue {
  return v instanceof SecretValue;
}
