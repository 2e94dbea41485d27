/**
 * `cairn master` and `cairn agent enrol|renew` end to end (DESIGN §9, §12): a real master
 * process (the built command) on loopback over SQLite, tokens made and agents enrolled through
 * the CLI, the inventory listed and revoked, and bad input refused with a clear message and the
 * exit code §12 gives (2: input, 3: the master or its environment).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { CAIRN, cairnBin, runCli, tempDir } from './helpers/cli.ts';
import { waitUntil } from './helpers/wait.ts';

interface RunningMaster {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  hash: string;
  agentUrl: string;
  apiUrl: string;
  exited: Promise<number | null>;
}

async function startMasterProcess(store: string, state: string, extra: string[] = []): Promise<RunningMaster> {
  const child = spawn(process.execPath, [CAIRN, 'master', '--store', store, '--state', state, '--listen', '127.0.0.1:0', '--agent-listen', '127.0.0.1:0', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' },
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  await waitUntil(() => done || /^API: /m.test(out), () => `the master to start; it said: ${out}${err}`);
  assert.equal(done, false, `the master exited: ${out}${err}`);
  return {
    child, stdout: () => out, stderr: () => err, exited,
    hash: /^CA (sha256:[0-9a-f]{64})/m.exec(out)![1]!,
    agentUrl: /^agents: (\S+)/m.exec(out)![1]!,
    apiUrl: /^API: (\S+)/m.exec(out)![1]!,
  };
}

test('a master process; tokens, enrolment, renewal, listing and revocation through the CLI; SIGTERM stops it', async (t) => {
  const dir = tempDir('cairn-master-cli-');
  const store = `sqlite:${join(dir, 'store.db')}`;
  const state = join(dir, 'state');
  const master = await startMasterProcess(store, state);
  t.after(() => master.child.kill('SIGKILL'));
  assert.match(master.stdout(), /\(new, in .*state\)/);
  assert.equal(statSync(join(state, 'ca.key')).mode & 0o777, 0o600);

  const hash = await runCli(['master', 'ca', 'hash', '--state', state]);
  assert.equal(hash.stdout.trim(), master.hash);

  const made = await runCli(['master', 'token', 'create', '--store', store, '--name', 'web-1', '--ttl', '30m']);
  assert.equal(made.status, 0, made.stderr);
  const token = made.stdout.trim();
  assert.match(token, /^cairn-enrol\.[0-9a-f]{16}\.\S{43}$/);
  assert.match(made.stderr, /for web-1: 1 use, until/);
  assert.match((await runCli(['master', 'token', 'list', '--store', store])).stdout, /web-1 {2}uses left 1/);
  assert.ok(!(await runCli(['master', 'token', 'list', '--store', store, '--json'])).stdout.includes(token.split('.')[2]!));

  // The built command enrols (the bundle carries the X.509 code and its Reflect shim).
  const agentDir = join(dir, 'agent');
  const enrolled = cairnBin(['agent', 'enrol', '--master', master.agentUrl, '--token', token, '--ca-hash', master.hash, '--name', 'web-1', '--dir', agentDir]);
  assert.equal(enrolled.status, 0, enrolled.stderr);
  assert.match(enrolled.stdout, /^enrolled as web-1: certificate [0-9A-F]+ until /);
  const keyFile = readdirSync(agentDir).find((f) => f.startsWith('key-'))!;
  assert.equal(statSync(join(agentDir, keyFile)).mode & 0o777, 0o600);

  const spent = await runCli(['agent', 'enrol', '--master', master.agentUrl, '--token', token, '--ca-hash', master.hash, '--name', 'web-1', '--dir', join(dir, 'again')]);
  assert.equal(spent.status, 2);
  assert.match(spent.stderr, /refused the enrolment: enrolment of web-1 refused: the token is unknown, revoked or already spent/);
  assert.equal(existsSync(join(dir, 'again', 'enrolment.json')), false);

  const renewed = await runCli(['agent', 'renew', '--dir', agentDir]);
  assert.equal(renewed.status, 0, renewed.stderr);
  assert.match(renewed.stdout, /^renewed web-1: certificate/);

  const list = await runCli(['master', 'ca', 'list', '--store', store, '--json']);
  const certs = JSON.parse(list.stdout) as { name: string; status: string; via: string; serial: string }[];
  assert.deepEqual(certs.map((c) => [c.name, c.status, c.via]).sort(), [['web-1', 'valid', 'enrol'], ['web-1', 'valid', 'renew']]);

  const revoked = await runCli(['master', 'ca', 'revoke', '--store', store, 'web-1']);
  assert.equal(revoked.status, 0, revoked.stderr);
  assert.equal(revoked.stdout.trim().split('\n').length, 2);
  const after = JSON.parse((await runCli(['master', 'ca', 'list', '--store', store, '--json'])).stdout) as { status: string }[];
  assert.deepEqual(after.map((c) => c.status), ['revoked', 'revoked']);
  const again = await runCli(['master', 'ca', 'revoke', '--store', store, 'web-1']);
  assert.equal(again.status, 0);
  assert.match(again.stdout, /^[0-9A-F]+ was already revoked\n[0-9A-F]+ was already revoked\n$/);
  const noSuch = await runCli(['master', 'ca', 'revoke', '--store', store, 'nobody']);
  assert.equal(noSuch.status, 2);
  assert.match(noSuch.stderr, /no certificate has serial "nobody" and no valid certificate has that name/);
  // Revoked: renewing is refused by the master (it cuts the connection or answers 401): exit 3.
  const renewRevoked = await runCli(['agent', 'renew', '--dir', agentDir]);
  assert.equal(renewRevoked.status, 3, renewRevoked.stderr);
  assert.match((await runCli(['master', 'ca', 'clean', '--store', store])).stdout, /^nothing expired/);

  const api = await runCli(['master', 'api-token', 'create', '--store', store, '--name', 'ops', '--role', 'operator']);
  assert.equal(api.status, 0, api.stderr);
  assert.match(api.stdout.trim(), /^cairn-api\./);
  const apiList = await runCli(['master', 'api-token', 'list', '--store', store]);
  assert.match(apiList.stdout, /operator {2}ops/);
  const id = /^([0-9a-f]{16})/.exec(apiList.stdout)![1]!;
  assert.equal((await runCli(['master', 'api-token', 'revoke', '--store', store, id])).status, 0);
  assert.equal((await runCli(['master', 'api-token', 'revoke', '--store', store, id])).status, 2);

  master.child.kill('SIGTERM');
  assert.equal(await master.exited, 0, master.stderr());
});

test('bad input to enrol and the master: clear errors, exit 2 for input and 3 for the master or the machine', async (t) => {
  const dir = tempDir('cairn-master-bad-');
  const store = `sqlite:${join(dir, 'store.db')}`;
  const master = await startMasterProcess(store, join(dir, 'state'));
  t.after(() => master.child.kill('SIGKILL'));
  const token = (await runCli(['master', 'token', 'create', '--store', store, '--name', 'web-1'])).stdout.trim();
  const enrol = (args: Record<string, string>) => runCli(['agent', 'enrol', ...Object.entries({
    '--master': master.agentUrl, '--token': token, '--ca-hash': master.hash, '--name': 'web-1', '--dir': join(dir, 'agent'), ...args,
  }).flat()]);
  const cases: [Record<string, string>, number, RegExp][] = [
    [{ '--ca-hash': 'sha1:abc' }, 2, /--ca-hash "sha1:abc" is not sha256:<64 hex digits>/],
    [{ '--ca-hash': `sha256:${'a'.repeat(64)}` }, 3, /offers a CA whose hash is sha256:[0-9a-f]{64}, not the sha256:a{64} given: refusing to trust it/],
    [{ '--name': 'web 1' }, 2, /--name: "web 1" is not a valid agent name/],
    [{ '--name': 'web-2' }, 2, /the token is for the name web-1/],
    [{ '--token': 'hunter2' }, 2, /--token is not an enrolment token/],
    [{ '--master': 'http://127.0.0.1:1' }, 2, /must be https:\/\/HOST\[:PORT\]/],
    [{ '--master': 'https://127.0.0.1:1' }, 3, /master https:\/\/127\.0\.0\.1:1 is unreachable/],
  ];
  for (const [args, code, message] of cases) {
    const r = await enrol(args);
    assert.equal(r.status, code, `${JSON.stringify(args)}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(existsSync(join(dir, 'agent', 'enrolment.json')), false);
  }
  // None of the refused attempts spent the token.
  assert.equal((await enrol({})).status, 0);

  const badName = await runCli(['master', 'token', 'create', '--store', store, '--name', '../etc']);
  assert.equal(badName.status, 2);
  assert.match(badName.stderr, /"..\/etc" is not a valid agent name/);
  assert.equal((await runCli(['master', 'token', 'create', '--store', store, '--name', 'x', '--ttl', 'soon'])).status, 2);
  assert.equal((await runCli(['master', 'token', 'revoke', '--store', store, 'nope'])).status, 2);
  const noState = await runCli(['master', 'ca', 'hash', '--state', join(dir, 'none')]);
  assert.equal(noState.status, 2);
  assert.match(noState.stderr, /cannot read .*none\/ca\.pem: ENOENT/);
  assert.equal((await runCli(['agent', 'renew', '--dir', join(dir, 'none')])).status, 2);

  const badListen = await runCli(['master', '--store', store, '--state', join(dir, 'state'), '--listen', 'everywhere']);
  assert.equal(badListen.status, 2);
  assert.match(badListen.stderr, /--listen "everywhere" is not HOST:PORT/);
  // A state folder that cannot be made: exit 3, naming it.
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(dir, 'a-file'), '');
  const badState = await runCli(['master', '--store', store, '--state', join(dir, 'a-file', 'state'), '--listen', '127.0.0.1:0', '--agent-listen', '127.0.0.1:0']);
  assert.equal(badState.status, 3);
  assert.match(badState.stderr, /the CA state .*a-file\/state cannot be used: ENOTDIR/);
  // A port another process holds: exit 3, naming it.
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  t.after(() => holder.close());
  const port = (holder.address() as { port: number }).port;
  const busy = await runCli(['master', '--store', store, '--state', join(dir, 'state'), '--listen', '127.0.0.1:0', '--agent-listen', `127.0.0.1:${port}`]);
  assert.equal(busy.status, 3);
  assert.match(busy.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: EADDRINUSE`));
});
