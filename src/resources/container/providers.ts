/** The providers of the `container` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { nspawnContainer } from './nspawn.ts';

export const containerProviders: readonly Provider[] = [nspawnContainer];

export default containerProviders;
