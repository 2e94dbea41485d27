/** The providers of the `line` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { posixLine } from './provider.ts';

const providers: readonly Provider[] = [posixLine];
export default providers;
