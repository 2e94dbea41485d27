/** The providers of the `guest` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { libvirtGuest } from './provider.ts';

export const guestProviders: readonly Provider[] = [libvirtGuest];

export default guestProviders;
