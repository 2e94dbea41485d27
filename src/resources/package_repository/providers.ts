/** The providers of the `package_repository` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { apkRepository } from './apk.ts';
import { aptRepository } from './apt.ts';
import { yumRepository } from './dnf.ts';

const providers: readonly Provider[] = [aptRepository, yumRepository, apkRepository];
export default providers;
