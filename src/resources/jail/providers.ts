/** The providers of the `jail` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { iocageJail } from './iocage.ts';

export const jailProviders: readonly Provider[] = [iocageJail];

export default jailProviders;
