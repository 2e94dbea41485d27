/** The providers of the `reboot` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { waitingReboot } from './provider.ts';

export const rebootProviders: readonly Provider[] = [waitingReboot];

export default rebootProviders;
