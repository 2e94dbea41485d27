/** The providers of the `directory` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { posixDirectory } from './provider.ts';

const providers: readonly Provider[] = [posixDirectory];
export default providers;
