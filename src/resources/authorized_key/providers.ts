/** The providers of the `authorized_key` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';

export const authorizedkeyProviders: readonly Provider[] = [];
