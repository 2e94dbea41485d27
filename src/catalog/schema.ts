/** The shape of cairn.yaml, the inventory, roles and groups (DESIGN §3). */
import { z } from 'zod';

const varsMap = z.record(z.string(), z.unknown());

/** A run entry: a state name, or a one-key map of a state name to its parameters. */
const RUN_ENTRY_HELP = 'a run entry is a state name, or `state: { param: value }` (one key)';
export const runEntry = z.union([
  z.string().min(1),
  z
    .record(z.string(), z.union([z.record(z.string(), z.unknown()), z.null()]))
    .refine((m) => Object.keys(m).length === 1, RUN_ENTRY_HELP),
], { error: RUN_ENTRY_HELP });
export const runList = z.array(runEntry);
const nameList = z.array(z.string().min(1));

export const executorName = z.enum(['local', 'ssh', 'agent', 'chroot', 'container', 'jail']);

const JUMP_HOP = /^(?:ssh:\/\/)?(?:[^@\s,]+@)?(?:\[[^\]\s,]+\]|[^@:\s,[\]]+)(?::\d{1,5})?$/;
const JUMP_HELP = 'a jump host is [user@]host[:port]';
const jumpSetting = z.union([
  z.string().refine((s) => s === 'none' || s.split(',').every((h) => JUMP_HOP.test(h.trim())), JUMP_HELP),
  z.array(z.string().regex(JUMP_HOP, JUMP_HELP)).min(1),
], { error: `jump is a host, a list of hosts or none; ${JUMP_HELP}` });

export const targetSettings = z.strictObject({
  executor: executorName.optional().describe('local, ssh, agent, chroot, container or jail; default ssh when host is set, else local'),
  host: z.string().optional(),
  port: z.number().int().min(1).max(65535).optional(),
  user: z.string().optional(),
  identity_file: z.string().optional(),
  known_hosts: z.string().optional(),
  become: z.boolean().optional(),
  become_user: z.string().optional(),
  jump: jumpSetting.optional().describe('jump hosts to go through, as ssh -J / ProxyJump: [user@]host[:port], a list or comma-separated; none for none'),
  connect_timeout: z.number().positive().optional().describe('seconds for each TCP connection and SSH handshake; default ConnectTimeout from ~/.ssh/config, else 15'),
  root: z.string().optional().describe('for the chroot executor: the root file system to converge'),
  via: z.string().min(1).optional().describe('a nested target: the target it is reached through (with executor container, jail or chroot)'),
  machine: z.string().min(1).optional().describe('for the container executor: the machine (container) name on the via target'),
  jail: z.string().min(1).optional().describe('for the jail executor: the jail name on the via target'),
  // Checked here, not when a run first needs the folder: by then other nodes were applied.
  state_dir: z.string().refine((dir) => dir.startsWith('/'), 'state_dir must be an absolute path (a folder on the target)').optional()
    .describe('where Cairn keeps its per-target state; default /var/lib/cairn'),
});

export const targetSchema = targetSettings.extend({
  vars: varsMap.optional(),
  roles: nameList.optional(),
  groups: nameList.optional(),
  run: runList.optional(),
});

export const groupSchema = z
  .strictObject({
    targets: nameList.optional(),
    match: z.string().min(1).optional().describe('a glob (web-*) or /regex/ over target names'),
    roles: nameList.optional(),
    vars: varsMap.optional(),
    run: runList.optional(),
  });

export const roleSchema = z.strictObject({
  vars: varsMap.optional(),
  run: runList.optional(),
});

const targetsMap = z.record(z.string(), targetSchema.nullable());
const groupsMap = z.record(z.string(), groupSchema.nullable());
const rolesMap = z.record(z.string(), roleSchema.nullable());

export const configSchema = z.strictObject({
  name: z.string().optional().describe('the site\'s name'),
  defaults: targetSettings.optional().describe('settings every target starts from'),
  targets: targetsMap.optional(),
  groups: groupsMap.optional(),
  roles: rolesMap.optional(),
  states: z.record(z.string(), z.unknown()).optional(),
  vars: varsMap.optional(),
  store: z.string().optional().describe('store URL: sqlite:<path> or etcd:<host:port,…>'),
  master: z.string().url().optional().describe("the master's API (https://HOST:8640) that targets with executor: agent are run through"),
  timeout: z.number().positive().max(3600).optional().describe('seconds one template render may take before it is stopped (an input error); default 5'),
});

export const inventorySchema = z.strictObject({
  targets: targetsMap.optional(),
  groups: groupsMap.optional(),
});

export const componentSchema = z.strictObject({
  description: z.string().optional(),
  vars: varsMap.optional().describe('the component\'s default variables (lowest precedence)'),
  states: z.record(z.string(), z.unknown()).optional(),
});

export type TargetDoc = z.output<typeof targetSchema>;
export type GroupDoc = z.output<typeof groupSchema>;
export type RoleDoc = z.output<typeof roleSchema>;
export type TargetSettings = z.output<typeof targetSettings>;
