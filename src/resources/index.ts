/** The registry of resource types, in the order `cairn schema` documents them. */
import type { ResourceType } from './type.ts';
import { fileType } from './file/type.ts';
import { directoryType } from './directory/type.ts';
import { symlinkType } from './symlink/type.ts';
import { lineType } from './line/type.ts';
import { execType } from './exec/type.ts';
import { transitionType } from './transition/type.ts';
import { packageType } from './package/type.ts';
import { serviceType } from './service/type.ts';
import { userType } from './user/type.ts';
import { groupType } from './group/type.ts';
import { authorizedKeyType } from './authorized_key/type.ts';
import { cronType } from './cron/type.ts';
import { hostnameType } from './hostname/type.ts';
import { sysctlType } from './sysctl/type.ts';

export const resourceTypes: readonly ResourceType[] = [
  fileType, directoryType, symlinkType, lineType, execType, transitionType,
  packageType, serviceType, userType, groupType, authorizedKeyType, cronType, hostnameType, sysctlType,
];

const byName = new Map(resourceTypes.map((t) => [t.name, t]));

export function resourceType(name: string): ResourceType | undefined {
  return byName.get(name);
}

export type { ResourceType, ChangeClass } from './type.ts';
