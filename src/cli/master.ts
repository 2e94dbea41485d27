/**
 * `cairn master …` and the agent's enrolment commands (DESIGN §9): the master daemon, its
 * enrolment tokens, API tokens and certificate inventory (all in the store, so any master of the
 * fleet serves them), and `cairn agent enrol|renew` on the agent's machine.
 */
import { existsSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { ExitCode } from '../lib/errors.ts';
import type { Store } from '../store/types.ts';
import type { MasterOptions } from '../daemon/master/server.ts';
import type { AgentParts, AgentPartsOptions } from '../daemon/master/fleet.ts';
import type { StoreFlags } from './store-commands.ts';
import { writeErr, writeOut } from './output.ts';

export const DEFAULT_STATE_DIR = '/var/lib/cairn/master';
export const DEFAULT_AGENT_TLS_DIR = '/var/lib/cairn/agent-tls';

/** `--ttl`: seconds, or a number with s, m, h or d. */
export function duration(value: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$/.exec(value);
  const n = m ? Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'] : NaN;
  if (!(n > 0)) throw new InvalidArgumentError('expected a duration such as 90s, 30m, 1h or 7d');
  return n;
}

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number, 1 or more');
  return n;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

const storeOptions = (c: Command) => c
  .option('--store <url>', 'sqlite:<path> or etcd:<host:port,…> (default: $CAIRN_STORE or the store config)')
  .option('--store-config <file>', 'YAML with url: and credentials (ca, cert, key, user, password); default /etc/cairn/store.yaml');

/**
 * Errors the master's modules raise for the operator to read (a refused enrolment, a bad
 * token option, a CA file that cannot be used): said on stderr with their exit code.
 */
async function said(fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (err) {
    const code = (err as { exitCode?: unknown }).exitCode;
    const { EnrolmentError } = await import('../daemon/enrolment/client.ts');
    const { TokenInputError } = await import('../daemon/master/tokens.ts');
    const { CaFileError } = await import('../daemon/master/ca.ts');
    const { ListenError } = await import('../daemon/master/server.ts');
    if ([EnrolmentError, TokenInputError, CaFileError, ListenError].some((c) => err instanceof c) && typeof code === 'number') {
      writeErr(`cairn: ${(err as Error).message}\n`);
      return code;
    }
    throw err;
  }
}

function storeCommand(flags: StoreFlags, fn: (store: Store) => Promise<number>): Promise<number> {
  return said(async () => {
    // Loaded on use: main.ts imports this file, and a plain `apply` must not load the store's code.
    const { withStore } = await import('./store-commands.ts');
    return Number(await withStore(flags, fn));
  });
}

/**
 * What a remove or revoke command says: `what id done` (exit 0), or that there is none such and
 * where they are listed (exit 2).
 */
function saidGone(gone: boolean, what: string, id: string, done: string, listCommand: string): number {
  if (gone) {
    writeOut(`${what} ${id} ${done}\n`);
    return ExitCode.ok;
  }
  writeErr(`cairn: no ${what} ${JSON.stringify(id)} (see cairn master ${listCommand} list)\n`);
  return ExitCode.invalidInput;
}

export function registerMasterCommands(program: Command): void {
  const master = storeOptions(program.command('master')
    .description('run the master: the agents\' enrolment CA and WebSocket port, and the HTTP API (DESIGN §9)')
    .option('--state <dir>', 'where the CA certificate and key (0600) live; made on first start', DEFAULT_STATE_DIR)
    .option('--listen <host:port>', 'the UI and API listener (HTTPS)', '127.0.0.1:8640')
    .option('--agent-listen <host:port>', 'the agent listener (mutual TLS)', '0.0.0.0:8641')
    .option('--name <dns-name>', "a name agents and browsers reach this master by, for its server certificate (repeatable; default: this host's name)", collect)
    .option('--forks <n>', 'ops (runs on agents) in flight at once', wholeNumber, 50)
    .option('--stale-after <duration>', "a target whose last run is older than this shows as stale in the UI (90s, 30m, 1h, 7d)", duration, 86_400)
    .option('--keep-runs <n>', 'finished runs kept in the store for each target (older ones, with their events, are removed)', wholeNumber, 100)
    .option('--keep-days <n>', 'also remove finished runs older than this many days (default: by count only)', wholeNumber))
    // `master token create --name N --store S`: a subcommand's options are its own.
    .enablePositionalOptions()
    .action(async (options: StoreFlags & MasterDaemonOptions) => {
      process.exitCode = await storeCommand(options, (store) => runMaster(store, options));
    });

  const token = master.command('token').description('one-time enrolment tokens for agents');
  storeOptions(token.command('create')
    .description('print a new enrolment token for agent NAME (the store keeps only its hash)')
    .requiredOption('--name <name>', "the agent's name (its certificate's CN and its target name)")
    .option('--ttl <duration>', 'how long the token can be used (90s, 30m, 1h, 7d)', duration, 3600)
    .option('--uses <n>', 'how many enrolments it allows', wholeNumber, 1)
    .option('--replace', 'the name may already hold a valid certificate: enrolling revokes it')
    .option('--json', 'print JSON'))
    .action(async (options: StoreFlags & { name: string; ttl: number; uses: number; replace?: boolean; json?: boolean }) => {
      process.exitCode = await storeCommand(options, async (store) => {
        const { createEnrolToken } = await import('../daemon/master/tokens.ts');
        const { token: t, record } = await createEnrolToken(store, { name: options.name, ttlSeconds: options.ttl, uses: options.uses, replace: options.replace === true });
        if (options.json) writeOut(`${JSON.stringify({ token: t, id: record.id, name: record.name, expires: record.expires, uses: record.uses_left, replace: record.replace }, null, 2)}\n`);
        else {
          writeOut(`${t}\n`);
          writeErr(`enrolment token ${record.id} for ${record.name}: ${record.uses_left} use${record.uses_left === 1 ? '' : 's'}, until ${record.expires}${record.replace ? ', may replace a valid certificate' : ''}\n`);
        }
        return ExitCode.ok;
      });
    });
  storeOptions(token.command('list').description('list enrolment tokens not yet spent (ids, never the tokens)').option('--json', 'print JSON'))
    .action(async (options: StoreFlags & { json?: boolean }) => {
      process.exitCode = await storeCommand(options, async (store) => {
        const { listEnrolTokens } = await import('../daemon/master/tokens.ts');
        const tokens = (await listEnrolTokens(store)).map(({ hash: _hash, ...rest }) => rest);
        if (options.json) writeOut(`${JSON.stringify(tokens, null, 2)}\n`);
        else {
          if (tokens.length === 0) writeOut('no enrolment tokens\n');
          const now = Date.now();
          for (const t of tokens) writeOut(`${t.id}  ${t.name}  uses left ${t.uses_left}  ${Date.parse(t.expires) <= now ? 'expired' : 'until'} ${t.expires}${t.replace ? '  replace' : ''}\n`);
        }
        return ExitCode.ok;
      });
    });
  storeOptions(token.command('revoke').description('delete an enrolment token (by id, or the token itself)').argument('<id>'))
    .action(async (id: string, options: StoreFlags) => {
      process.exitCode = await storeCommand(options, async (store) => {
        const { revokeEnrolToken } = await import('../daemon/master/tokens.ts');
        return saidGone(await revokeEnrolToken(store, id), 'enrolment token', id, 'revoked', 'token');
      });
    });

  const apiToken = master.command('api-token').description('tokens for the HTTP API, each with a role');
  storeOptions(apiToken.command('create')
    .description('print a new API token (a bearer token, or to log in to the web UI)')
    .requiredOption('--name <name>', 'who or what uses it')
    .addOption(new Option('--role <role>', 'viewer, operator or admin').choices(['viewer', 'operator', 'admin']).makeOptionMandatory())
    .option('--json', 'print JSON'))
    .action(async (options: StoreFlags & { name: string; role: 'viewer' | 'operator' | 'admin'; json?: boolean }) => {
      process.exitCode = await storeCommand(options, async (store) => {
        const { createApiToken } = await import('../daemon/master/tokens.ts');
        const { token: t, record } = await createApiToken(store, options.name, options.role);
        if (options.json) writeOut(`${JSON.stringify({ token: t, id: record.id, name: record.name, role: record.role }, null, 2)}\n`);
        else {
          writeOut(`${t}\n`);
          writeErr(`API token ${record.id} for ${record.name} (${record.role})\n`);
        }
        return ExitCode.ok;
      });
    });
  storeOptions(apiToken.command('list').description('list API tokens (ids, never the tokens)').option('--json', 'print JSON'))
    .action(async (options: StoreFlags & { json?: boolean }) => {
      process.exitCode = await storeCommand(options, async (store) => {
        const { listApiTokens } = await import('../daemon/master/tokens.ts');
        const tokens = (await listApiTokens(store)).map(({ hash: _hash, ...rest }) => rest);
        if (options.json) writeOut(`${JSON.stringify(tokens, null, 2)}\n`);
        else {
          if (tokens.length === 0) writeOut('no API tokens\n');
          for (const t of tokens) writeOut(`${t.id}  ${t.role.padEnd(8)}  ${t.name}  created ${t.created}\n`);
        }
        return ExitCode.ok;
      });
    });
  const user = master.command('user').description('web UI users who log in with a name and password, each with a role');
  storeOptions(user.command('add')
    .description('add a user; the password is read from stdin (first line) or, on a terminal, asked for twice, never from the command line')
    .argument('<name>')
    .addOption(new Option('--role <role>', 'viewer, operator or admin').choices(['viewer', 'operator', 'admin']).makeOptionMandatory())
    .option('--replace', 'the user exists: set a new password and role'))
    .action(async (name: string, options: StoreFlags & { role: 'viewer' | 'operator' | 'admin'; replace?: boolean }) => {
      const { addUser, passwordProblem, userNameProblem } = await import('../daemon/master/users.ts');
      const problem = userNameProblem(name);
      if (problem) {
        writeErr(`cairn: ${JSON.stringify(name)}: ${problem}\n`);
        process.exitCode = ExitCode.invalidInput;
        return;
      }
      const password = await readPassword();
      const weak = password === undefined ? 'the two passwords differ' : passwordProblem(password);
      if (weak || password === undefined) {
        writeErr(`cairn: ${weak}\n`);
        process.exitCode = ExitCode.invalidInput;
        return;
      }
      process.exitCode = await storeCommand(options, async (store) => {
        try {
          await addUser(store, name, options.role, password, options.replace === true);
        } catch (err) {
          if (!(err instanceof RangeError)) throw err;
          writeErr(`cairn: ${err.message}\n`);
          return ExitCode.invalidInput;
        }
        writeErr(`user ${name} (${options.role}) ${options.replace ? 'set' : 'added'}\n`);
        return ExitCode.ok;
      });
    });
  storeOptions(user.command('list').description('list users and their roles (never their password hashes)').option('--json', 'print JSON'))
    .action(async (options: StoreFlags & { json?: boolean }) => {
      process.exitCode = await storeCommand(options, async (store) => {
        const { listUsers } = await import('../daemon/master/users.ts');
        const users = await listUsers(store);
        if (options.json) writeOut(`${JSON.stringify(users, null, 2)}\n`);
        else {
          if (users.length === 0) writeOut('no users\n');
          for (const u of users) writeOut(`${u.name.padEnd(20)}  ${u.role.padEnd(8)}  created ${u.created}\n`);
        }
        return ExitCode.ok;
      });
    });
  storeOptions(user.command('remove').description('remove a user (their sessions end with them)').argument('<name>'))
    .action(async (name: string, options: StoreFlags) => {
      process.exitCode = await storeCommand(options, async (store) => {
        const { removeUser } = await import('../daemon/master/users.ts');
        return saidGone(await removeUser(store, name), 'user', name, 'removed', 'user');
      });
    });

  storeOptions(apiToken.command('revoke').description('delete an API token (its sessions end with it)').argument('<id>'))
    .action(async (id: string, options: StoreFlags) => {
      process.exitCode = await storeCommand(options, async (store) => {
        const { revokeApiToken } = await import('../daemon/master/tokens.ts');
        return saidGone(await revokeApiToken(store, id), 'API token', id, 'revoked', 'api-token');
      });
    });

  const ca = master.command('ca').description("the agents' certificates");
  storeOptions(ca.command('list').description('every certificate issued, with its status').option('--json', 'print JSON'))
    .action(async (options: StoreFlags & { json?: boolean }) => {
      process.exitCode = await storeCommand(options, async (store) => {
        const { certificateList } = await import('../daemon/master/master-routes.ts');
        const list = await certificateList(store);
        if (options.json) writeOut(`${JSON.stringify(list, null, 2)}\n`);
        else {
          if (list.length === 0) writeOut('no certificates\n');
          for (const c of list) writeOut(`${c.serial}  ${c.status.padEnd(7)}  ${c.name}  until ${c.not_after}${c.revoked ? `  revoked ${c.revoked}` : ''}\n`);
        }
        return ExitCode.ok;
      });
    });
  storeOptions(ca.command('revoke').description('revoke a certificate by serial, or every valid one of an agent name').argument('<serial-or-name>'))
    .action(async (what: string, options: StoreFlags) => {
      process.exitCode = await storeCommand(options, async (store) => {
        const { revoke } = await import('../daemon/master/revocation.ts');
        const r = await revoke(store, what);
        for (const s of r.revoked) writeOut(`revoked ${s}\n`);
        for (const s of r.already) writeOut(`${s} was already revoked\n`);
        if (r.revoked.length + r.already.length > 0) return ExitCode.ok;
        writeErr(`cairn: no certificate has serial ${JSON.stringify(what)} and no valid certificate has that name (see cairn master ca list)\n`);
        return ExitCode.invalidInput;
      });
    });
  storeOptions(ca.command('clean').description('drop the inventory and revocation entries of expired certificates'))
    .action(async (options: StoreFlags) => {
      process.exitCode = await storeCommand(options, async (store) => {
        const { cleanExpired } = await import('../daemon/master/revocation.ts');
        const dropped = await cleanExpired(store);
        writeOut(dropped.length === 0 ? 'nothing expired\n' : `dropped ${dropped.length} expired certificate${dropped.length === 1 ? '' : 's'}: ${dropped.join(', ')}\n`);
        return ExitCode.ok;
      });
    });
  ca.command('hash')
    .description("print the CA's hash, for agents' --ca-hash")
    .option('--state <dir>', "the master's state folder", DEFAULT_STATE_DIR)
    .action(async (options: { state: string }) => {
      const { certificateHash } = await import('../daemon/pki/x509.ts');
      const file = join(resolve(options.state), 'ca.pem');
      let pem: string;
      try {
        pem = readFileSync(file, 'utf8');
      } catch (err) {
        writeErr(`cairn: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (the master makes it on its first start)\n`);
        process.exitCode = ExitCode.invalidInput;
        return;
      }
      writeOut(`${certificateHash(pem)}\n`);
    });
}

/** `cairn agent enrol` and `cairn agent renew`, under the `agent` command. */
export function registerAgentEnrolment(agent: Command): void {
  agent.command('enrol')
    .description("get this machine's client certificate from a master, with a one-time token")
    .requiredOption('--master <url>', "the master's agent port, https://HOST:8641")
    .requiredOption('--token <token>', 'the enrolment token (cairn master token create)')
    .requiredOption('--ca-hash <sha256:hex>', "the master's CA hash (printed at its start, and by cairn master ca hash)")
    .requiredOption('--name <name>', "this machine's agent name (its target name)")
    .option('--dir <dir>', 'where the key (0600), certificate and CA are kept', DEFAULT_AGENT_TLS_DIR)
    .action(async (options: { master: string; token: string; caHash: string; name: string; dir: string }) => {
      process.exitCode = await said(async () => {
        const { enrolAgent } = await import('../daemon/enrolment/client.ts');
        const c = await enrolAgent({ ...options, dir: resolve(options.dir) });
        writeOut(`enrolled as ${c.name}: certificate ${c.serial} until ${c.not_after}, kept in ${resolve(options.dir)}\n`);
        return ExitCode.ok;
      });
    });
  agent.command('renew')
    .description('renew the certificate now, with a new key (agents do it by themselves 30 days before expiry)')
    .option('--dir <dir>', 'the enrolment folder', DEFAULT_AGENT_TLS_DIR)
    .option('--master <url>', 'the master to ask (default: the one enrolled with)')
    .action(async (options: { dir: string; master?: string }) => {
      process.exitCode = await said(async () => {
        const { renewCertificate } = await import('../daemon/enrolment/client.ts');
        const c = await renewCertificate(resolve(options.dir), options.master);
        writeOut(`renewed ${c.name}: certificate ${c.serial} until ${c.not_after}\n`);
        return ExitCode.ok;
      });
    });
}

/**
 * What the master serves beyond its own routes (the run API, the agent protocol): the one place
 * the CLI composes the route table, so the tests that call every route build the same table.
 */
export async function masterParts(store: Store, options: AgentPartsOptions = {}): Promise<Pick<MasterOptions, 'routes' | 'onAgentSocket'> & AgentParts> {
  const { agentParts } = await import('../daemon/master/fleet.ts');
  const { uiRoutes } = await import('../daemon/master/ui-routes.ts');
  const parts = await agentParts(store, options);
  return { ...parts, routes: [...parts.routes, ...uiRoutes(uiDirectory())] };
}

/**
 * A new password: the first line of stdin, or on a terminal asked for twice without echo;
 * undefined when the two typed differ.
 */
async function readPassword(): Promise<string | undefined> {
  const stdin = process.stdin;
  if (stdin.isTTY !== true) {
    let text = '';
    for await (const chunk of stdin) text += String(chunk);
    return text.split(/\r?\n/)[0] ?? '';
  }
  const ask = async (prompt: string) => {
    const { createInterface } = await import('node:readline/promises');
    const { Writable } = await import('node:stream');
    process.stderr.write(prompt);
    // Nothing typed is echoed: the interface writes to a sink.
    const rl = createInterface({ input: stdin, output: new Writable({ write: (_c, _e, done) => done() }), terminal: true });
    try {
      return await rl.question('');
    } finally {
      rl.close();
      process.stderr.write('\n');
    }
  };
  const first = await ask('Password: ');
  return first === (await ask('Again: ')) ? first : undefined;
}

/**
 * Where the web UI's built files are: dist/ui beside the running command (dist/cairn.cjs), or,
 * run from source, the checkout's dist/ui (after npm run build).
 */
function uiDirectory(): string | undefined {
  const here = import.meta.dirname as string | undefined;
  // argv[1] may be a symlink (an npm bin link): the files are beside the command it points to.
  const command = process.argv[1] && existsSync(process.argv[1]) ? realpathSync(process.argv[1]) : undefined;
  const candidates = [command ? join(dirname(command), 'ui') : undefined, here ? join(here, '../../dist/ui') : undefined];
  return candidates.find((c): c is string => c !== undefined && existsSync(join(c, 'index.html')));
}

/** Runs the master until SIGINT or SIGTERM. */
interface MasterDaemonOptions {
  state: string;
  listen: string;
  agentListen: string;
  name?: string[];
  forks: number;
  staleAfter: number;
  keepRuns: number;
  keepDays?: number;
}

async function runMaster(store: Store, options: MasterDaemonOptions): Promise<number> {
  const { createMaster } = await import('../daemon/master/server.ts');
  const { compileHeadFrom, headGroupsFrom } = await import('./master-compile.ts');
  const log = (line: string) => writeErr(`cairn master: ${line}\n`);
  const stateDir = resolve(options.state);
  // This state folder's last master (its id written at its start): gone, since this one starts here.
  const idFile = join(stateDir, 'master-id');
  const previousId = existsSync(idFile) ? readFileSync(idFile, 'utf8').trim() : undefined;
  // The agent protocol and the run API; API runs sent without compiled runs compile the pushed head here.
  const parts = await masterParts(store, {
    forks: options.forks, compileHead: compileHeadFrom(store, join(stateDir, 'work')), headGroups: headGroupsFrom(store, join(stateDir, 'work')), staleAfterSeconds: options.staleAfter, log,
    ...(previousId ? { previousId } : {}),
    retention: { keepRuns: options.keepRuns, ...(options.keepDays !== undefined ? { keepDays: options.keepDays } : {}) },
  });
  const master = await createMaster({
    routes: parts.routes, onAgentSocket: parts.onAgentSocket,
    store, stateDir, listen: options.listen, agentListen: options.agentListen,
    ...(options.name ? { names: options.name } : {}),
    log,
  });
  const temp = `${idFile}.${process.pid}.tmp`;
  writeFileSync(temp, `${parts.owners.id}\n`);
  renameSync(temp, idFile);
  const host = (listen: string) => listen.replace(/:\d+$/, '');
  writeOut(`CA ${master.ca.hash}${master.caCreated ? ` (new, in ${stateDir})` : ''}\n`);
  writeOut(`agents: https://${host(options.agentListen)}:${master.agentPort}\n`);
  writeOut(`API: https://${host(options.listen)}:${master.apiPort}\n`);
  await new Promise<void>((done) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      done();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await parts.close();
  await master.close();
  return ExitCode.ok;
}
