/** The providers of the `exec` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { shellExec } from './provider.ts';

const providers: readonly Provider[] = [shellExec];
export default providers;
