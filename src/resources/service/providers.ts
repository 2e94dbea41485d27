/** The providers of the `service` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';

export const serviceProviders: readonly Provider[] = [];
