/** The providers of the `sysctl` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { freebsdSysctl, linuxSysctl } from './provider.ts';

export const sysctlProviders: readonly Provider[] = [linuxSysctl, freebsdSysctl];

export default sysctlProviders;
