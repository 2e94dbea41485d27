/** The providers of the `service` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { openrcService } from './openrc.ts';
import { rcdService } from './rcd.ts';
import { systemdService } from './systemd.ts';

export const serviceProviders: readonly Provider[] = [systemdService, openrcService, rcdService];

export default serviceProviders;
