/** The providers of the `authorized_key` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { sshAuthorizedKey } from './provider.ts';

export const authorizedkeyProviders: readonly Provider[] = [sshAuthorizedKey];

export default authorizedkeyProviders;
