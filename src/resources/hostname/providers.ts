/** The providers of the `hostname` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { etcHostnameHostname, hostnamectlHostname, sysrcHostname } from './provider.ts';

export const hostnameProviders: readonly Provider[] = [hostnamectlHostname, etcHostnameHostname, sysrcHostname];

export default hostnameProviders;
