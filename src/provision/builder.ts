/**
 * The builder framework's public face (DESIGN §10). The class itself lives in api/ (a site's
 * `builders/*.ts` imports it from 'cairn', and api/ ranks below provision/); built-in scripts
 * import it from here.
 */
export { Builder, BuildFailure, BuildInputError } from '../api/provision.ts';
export type {
  ArgumentSpec, BuildContext, BuildHost, BuildNetwork, BuildSystem, BuildVolume, LoopDevice, MountOptions, RunOptions, RunOutput, VolumeSpec,
} from '../api/provision.ts';
