/** The providers of the `package` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';

export const packageProviders: readonly Provider[] = [];
