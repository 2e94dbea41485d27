/** The providers of the `group` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';

export const groupProviders: readonly Provider[] = [];
