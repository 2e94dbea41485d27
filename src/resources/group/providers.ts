/** The providers of the `group` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { busyboxGroup, pwGroup, shadowGroup } from './provider.ts';

export const groupProviders: readonly Provider[] = [busyboxGroup, shadowGroup, pwGroup];

export default groupProviders;
