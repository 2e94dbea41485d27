/** The providers of the `user` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { busyboxUser } from './busybox.ts';
import { pwUser } from './pw.ts';
import { shadowUser } from './shadow.ts';

export const userProviders: readonly Provider[] = [busyboxUser, shadowUser, pwUser];

export default userProviders;
