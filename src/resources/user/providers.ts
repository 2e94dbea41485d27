/** The providers of the `user` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';

export const userProviders: readonly Provider[] = [];
