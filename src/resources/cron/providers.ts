/** The providers of the `cron` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { crontabCron } from './provider.ts';

export const cronProviders: readonly Provider[] = [crontabCron];

export default cronProviders;
