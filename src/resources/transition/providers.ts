/** The providers of the `transition` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { engineTransition } from './provider.ts';

const providers: readonly Provider[] = [engineTransition];
export default providers;
