/** Cairn's version: package.json's, the one place it is written (the bundle carries it). */
import packageJson from '../../package.json' with { type: 'json' };

export const CAIRN_VERSION: string = packageJson.version;
