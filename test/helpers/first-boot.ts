/**
 * The state a provisioned image's first boot converges in the provisioning tests (its own target,
 * run by the exported script), and what it leaves for the tests to read back.
 */
export const FIRST_BOOT_CONTENT = 'hello from the first boot\n';

export const FIRST_BOOT_WEB_STATE = [
  'web:',
  '  - directory: /srv/www',
  '  - file: /srv/www/index.html',
  `    content: ${JSON.stringify(FIRST_BOOT_CONTENT)}`,
  '    mode: "0640"',
  '',
].join('\n');
