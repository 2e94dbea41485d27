/** The providers of the `symlink` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { posixSymlink } from './provider.ts';

const providers: readonly Provider[] = [posixSymlink];
export default providers;
