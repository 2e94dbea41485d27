/**
 * main() sets up only the command it is asked for (cli/main.ts, program(only)): the list of
 * command names it picks from is the program's own, each command alone is set up exactly as in
 * the whole program, and help, a misspelt command and options before the command still see them all.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Command } from 'commander';
import { COMMAND_NAMES, program } from '../src/cli/main.ts';
import { runCli } from './helpers/cli.ts';

/** A command's whole shape: its options, arguments and subcommands, recursively. */
function shape(c: Command): unknown {
  return {
    name: c.name(),
    description: c.description(),
    options: c.options.map((o) => [o.flags, o.description, o.defaultValue]),
    arguments: c.registeredArguments.map((a) => [a.name(), a.required, a.variadic]),
    commands: c.commands.map(shape),
  };
}

test('COMMAND_NAMES lists exactly the commands of the whole program', () => {
  assert.deepEqual(program().commands.map((c) => c.name()).sort(), [...COMMAND_NAMES].sort());
});

test('each command set up alone is the one of the whole program, and the only one', () => {
  const whole = program();
  for (const name of COMMAND_NAMES) {
    const alone = program(name);
    assert.deepEqual(alone.commands.map((c) => c.name()), [name]);
    assert.deepEqual(shape(alone.commands[0]!), shape(whole.commands.find((c) => c.name() === name)!), name);
    assert.deepEqual(alone.options.map((o) => o.flags), whole.options.map((o) => o.flags));
  }
});

test('help lists every command; a misspelt one is still suggested', async () => {
  const help = await runCli(['help']);
  for (const name of COMMAND_NAMES.filter((n) => !n.startsWith('__'))) assert.match(help.stdout, new RegExp(`^  ${name}\\b`, 'm'), name);
  const misspelt = await runCli(['aply']);
  assert.equal(misspelt.status, 2);
  assert.match(misspelt.stderr, /unknown command 'aply'\n\(Did you mean apply\?\)/);
  const commandHelp = await runCli(['apply', '--help']);
  assert.equal(commandHelp.status, 0);
  assert.match(commandHelp.stdout, /^Usage: cairn apply \[options\]/m);
  assert.match(commandHelp.stdout, /--lock-wait <seconds>/);
});
