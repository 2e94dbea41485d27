/** The providers of the `git` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { gitProvider } from './provider.ts';

const providers: readonly Provider[] = [gitProvider];
export default providers;
