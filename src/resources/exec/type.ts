import { z } from 'zod';
import { defineType } from '../define.ts';

export const execType = defineType({
  name: 'exec',
  key: 'command',
  description: 'A command: a shell command line (the key) or `argv`, guarded by creates/unless/onlyif.',
  schema: z.strictObject({
    command: z.string().min(1).describe('a shell command line run by /bin/sh -c (plain words, a program and its arguments, are run directly), or a name when argv is given'),
    argv: z.array(z.string()).min(1).optional().describe('the command as an argument array (no shell)'),
    creates: z.string().optional().describe('a path: skip if it exists'),
    unless: z.string().optional().describe('a command: skip if it exits 0'),
    onlyif: z.string().optional().describe('a command: skip if it exits non-zero'),
    cwd: z.string().optional(),
    env: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]).transform(String)).optional(),
    user: z.string().optional(),
    timeout: z.number().positive().optional().describe('seconds'),
  }),
  stateful: false,
  // Implicit ordering (DESIGN §6): after the user it runs as and the folder it runs in, when they are in the run.
  autoRequires: [{ attribute: 'user', type: 'user' }, { attribute: 'cwd', type: 'directory' }],
  refresh: 'runs again',
  createAction: 'run',
  reads: (a) => ({
    paths: [a.creates, a.cwd].filter((p): p is string => typeof p === 'string'),
    commands: a.unless !== undefined || a.onlyif !== undefined,
  }),
});

export default execType;
