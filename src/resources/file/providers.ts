/** The providers of the `file` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { posixFile } from './provider.ts';

const providers: readonly Provider[] = [posixFile];
export default providers;
