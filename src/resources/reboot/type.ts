import { z } from 'zod';
import { osSection } from '../os.ts';
import { defineType } from '../define.ts';

export const rebootType = defineType({
  name: 'reboot',
  key: 'name',
  description:
    'Reboots the target and waits for it to come back (a new connection, the same host key, a new boot id) before ' +
    "the run goes on: when notified, or at its turn when the OS says a reboot is required (`when: required`). " +
    "Ansible's reboot module and Salt's system.reboot are the models. Only through an executor that can reconnect (ssh): " +
    'the local executor cannot wait for the machine it runs on.',
  schema: z.strictObject({
    name: z.string().min(1).describe('a name for the reboot (what notify and require name)'),
    when: z.enum(['notified', 'required']).default('notified').describe(
      'notified (default): only when a node it listens to changed; required: also at its turn, when the OS ' +
      'tables\' reboot.required_file exists (Debian: /run/reboot-required, left by package upgrades)'),
    timeout: z.number().positive().default(600).describe('seconds the target may take to come back (default 600); longer fails the node and ends the run on the target'),
    command: z.array(z.string().min(1)).min(1).optional().describe('the reboot command as an argument list (default: the OS tables\' reboot.command, e.g. systemctl reboot)'),
  }),
  refresh: 'reboots and waits for the target to come back',
  createAction: 'run',
  reads: (attributes, os) => {
    const file = osSection(os, 'reboot').required_file;
    return { paths: attributes.when === 'required' && typeof file === 'string' ? [file] : [] };
  },
  stateful: false,
  needs: ['running-system'],
});

export default rebootType;
