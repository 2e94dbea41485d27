/** The providers of the `package` type, in the order they are tried (the first suitable one wins). */
import type { Provider } from '../type.ts';
import { apkProvider } from './apk.ts';
import { aptProvider } from './apt.ts';
import { dnfProvider, yumProvider } from './dnf.ts';
import { pacmanProvider } from './pacman.ts';
import { pkgProvider } from './pkg.ts';

export const packageProviders: readonly Provider[] = [aptProvider, dnfProvider, yumProvider, apkProvider, pacmanProvider, pkgProvider];

export default packageProviders;
