// Written by scripts/registry.mjs from the folders in src/resources/ (`npm run build` runs it): do not edit.
import { builder } from './builder.ts';

export const archive = builder('archive');
export const authorizedKey = builder('authorized_key');
export const cron = builder('cron');
export const directory = builder('directory');
export const exec = builder('exec');
export const file = builder('file');
export const git = builder('git');
export const group = builder('group');
export const guest = builder('guest');
export const hostname = builder('hostname');
export const line = builder('line');
export const mount = builder('mount');
export const pkg = builder('package');
export const packageRepository = builder('package_repository');
export const reboot = builder('reboot');
export const service = builder('service');
export const symlink = builder('symlink');
export const sysctl = builder('sysctl');
export const transition = builder('transition');
export const user = builder('user');
