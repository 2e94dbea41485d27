/** The providers of the `archive` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { archiveProvider } from './provider.ts';

const providers: readonly Provider[] = [archiveProvider];
export default providers;
