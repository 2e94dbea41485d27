/** The providers of the `mount` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { fstabMount } from './provider.ts';

export const mountProviders: readonly Provider[] = [fstabMount];

export default mountProviders;
