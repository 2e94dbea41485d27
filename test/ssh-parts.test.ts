/**
 * The pure pieces of the SSH executor, without a server: known_hosts matching, ~/.ssh/config,
 * shell quoting (checked against a real /bin/sh) and the batched read's parser.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { sshConfigFor } from '../src/executors/ssh/config.ts';
import { hostEntryName, keysFor, preferredHostKeyAlgorithms, verifyHostKey } from '../src/executors/ssh/known-hosts.ts';
import { BatchMismatch, FACTS_SCRIPT, parseBatch, parseCpuCount, parseFacts, parseSetup, REMOTE_FUNCTIONS, splitSections } from '../src/executors/shell/remote-script.ts';
import { localFacts } from '../src/executors/local-facts.ts';
import { plainCommandWords, printfFormat, shellCommand, shellQuote } from '../src/lib/shell.ts';

/** An SSH public key blob of `type` with random key material. */
function blob(type: string): Buffer {
  const t = Buffer.from(type);
  const key = randomBytes(32);
  const len = (n: number) => Buffer.from([0, 0, 0, n]);
  return Buffer.concat([len(t.length), t, len(key.length), key]);
}

test('known_hosts: plain, [host]:port, patterns, negation, hashed names and @revoked', () => {
  const ed = blob('ssh-ed25519');
  const other = blob('ssh-ed25519');
  const rsa = blob('ssh-rsa');
  const b64 = (b: Buffer) => b.toString('base64');
  const salt = randomBytes(20);
  const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[10.0.0.5]:2222').digest('base64')}`;
  const text = [
    '# comment', '',
    `web1,10.0.0.1 ssh-ed25519 ${b64(ed)} user@box`,
    `[10.0.0.2]:2200 ssh-ed25519 ${b64(ed)}`,
    `*.example.com,!bad.example.com ssh-rsa ${b64(rsa)}`,
    `${hashed} ssh-ed25519 ${b64(ed)}`,
    `@revoked * ssh-ed25519 ${b64(other)}`,
    `@cert-authority *.ca.example ssh-ed25519 ${b64(other)}`,
  ].join('\n');
  assert.equal(hostEntryName('h', 22), 'h');
  assert.equal(hostEntryName('h', 2200), '[h]:2200');
  assert.deepEqual(verifyHostKey(text, 'web1', 22, ed), { kind: 'known' });
  assert.deepEqual(verifyHostKey(text, '10.0.0.1', 22, ed), { kind: 'known' });
  assert.deepEqual(verifyHostKey(text, '10.0.0.2', 2200, ed), { kind: 'known' });
  assert.deepEqual(verifyHostKey(text, '10.0.0.2', 22, ed), { kind: 'unknown' }, 'another port is another host');
  assert.deepEqual(verifyHostKey(text, '10.0.0.5', 2222, ed), { kind: 'known' }, 'hashed');
  assert.deepEqual(verifyHostKey(text, 'web1', 22, blob('ssh-ed25519')), { kind: 'changed', line: 3 });
  assert.deepEqual(verifyHostKey(text, 'a.example.com', 22, ed), { kind: 'changed', line: 5 }, 'known by another key type: refused');
  assert.deepEqual(verifyHostKey(text, 'bad.example.com', 22, ed), { kind: 'unknown' }, 'negated');
  assert.deepEqual(verifyHostKey(text, 'anything', 22, other), { kind: 'revoked', line: 7 });
  assert.deepEqual(keysFor(text, 'x.ca.example', 22).map((k) => k.revoked), [true], 'certificate authorities are not host keys; a revoked key is revoked for all');
  assert.deepEqual(preferredHostKeyAlgorithms(text, 'a.example.com', 22).slice(0, 3), ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
  assert.equal(preferredHostKeyAlgorithms(text, 'web1', 22)[0], 'ssh-ed25519');
});

test('~/.ssh/config: Host patterns, first value wins, IdentityFile expansion, Match ignored', () => {
  const text = [
    'Host web-* !web-old',
    '  HostName %h.internal',
    '  User deploy',
    '  IdentityFile ~/.ssh/deploy',
    'Match user nobody',
    '  Port 9',
    'Host *',
    '  Port = 2222',
    '  User ignored',
    '  IdentityFile "/keys/%u-%h"',
  ].join('\n');
  const web = sshConfigFor(text, 'web-1');
  assert.equal(web.hostName, 'web-1.internal');
  assert.equal(web.user, 'deploy');
  assert.equal(web.port, 2222);
  assert.deepEqual(web.identityFiles.map((f) => f.replace(/^.*\/\.ssh/, '~/.ssh')), ['~/.ssh/deploy', '/keys/deploy-web-1']);
  const old = sshConfigFor(text, 'web-old');
  assert.equal(old.hostName, undefined);
  assert.equal(old.user, 'ignored');
});

test('shell quoting: every byte but NUL survives /bin/sh; printf formats keep NUL too', () => {
  const nasty = ["plain", "it's", 'a "b" $HOME `id` \\ \n\t*?[', '-n', '', 'ünïcode', '%s%d\\n'];
  const out = execFileSync('/bin/sh', ['-c', `for a in ${nasty.map(shellQuote).join(' ')}; do printf '%s\\0' "$a"; done`]);
  assert.deepEqual(out.toString().split('\0').slice(0, -1), nasty);
  assert.equal(execFileSync('/bin/sh', ['-c', `${shellCommand(['printf', '%s|', 'a b', "c'd"])}`]).toString(), "a b|c'd|");
  const bytes = Buffer.concat([Buffer.from("100% \\ ' \" $x\n"), Buffer.from([0, 1, 127, 128, 255]), randomBytes(512)]);
  assert.deepEqual(execFileSync('/bin/sh', ['-c', `printf ${printfFormat(bytes)}`]), bytes);
  // Content that starts like an option (a PEM key) is still a format, for dash's printf too.
  const pem = Buffer.from('-----BEGIN PGP PUBLIC KEY BLOCK-----\n');
  assert.deepEqual(execFileSync('/bin/sh', ['-c', `printf ${printfFormat(pem)}`]), pem);
});

test('plain command words: what sh would run as one program with those words, else undefined', () => {
  const plain = ['touch /tmp/x', '/usr/bin/touch /tmp/a,b', 'systemctl restart nginx.service', 'useradd -m -u 1001 -G a,b deploy', 'cp a@b +c %d e=f -'];
  for (const command of plain) {
    const words = plainCommandWords(command);
    assert.ok(words, command);
    // The real /bin/sh splits the same command into the same words (its first word printed in place of running it).
    const split = execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${command}`]).toString().split('\0').slice(0, -1);
    assert.deepEqual(words, split, command);
  }
  const shellOnly = [
    '', ' touch x', 'touch  x', 'touch x ', 'touch\tx', 'echo hi', 'cd /tmp', 'true', ': x', '. ./env', 'if', 'exec foo', 'A=1 touch x', '%1',
    'touch "x"', "touch 'x'", 'touch $HOME', 'touch ~/x', 'touch *.txt', 'touch x?', 'touch [ab]', 'touch x > y', 'touch x; ls',
    'touch x && ls', 'touch x | cat', 'touch x &', 'touch x # note', 'touch \\x', 'touch `id`', 'touch {a,b}', 'touch (x)', 'touch x\nls',
  ];
  for (const command of shellOnly) assert.equal(plainCommandWords(command), undefined, JSON.stringify(command));
});

test('the batched read, run by a real /bin/sh on real paths, parses back to what lstat says', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-batch-'));
  writeFileSync(join(dir, 'a file'), 'content\n');
  writeFileSync(join(dir, 'empty'), '');
  execFileSync('ln', ['-s', 'a file', join(dir, 'link')]);
  execFileSync('mkdir', [join(dir, 'sub')]);
  const paths = [join(dir, 'a file'), join(dir, 'empty'), join(dir, 'link'), join(dir, 'sub'), join(dir, 'missing')];
  const nonce = 'cairn-test-nonce';
  // The set-up prints a few facts about the shell, which the read's caller does not see.
  const script = `__n=${nonce}\n{\n${REMOTE_FUNCTIONS}\n} >/dev/null\n__cairn_read 2 ${paths.map(shellQuote).join(' ')}`;
  const read = execFileSync('/bin/sh', ['-c', script]);
  const result = parseBatch(read, nonce, paths, 2);
  assert.equal(result.get(paths[0]!)!.stat!.type, 'file');
  assert.equal(result.get(paths[0]!)!.content!.toString(), 'content\n');
  assert.equal(result.get(paths[0]!)!.sha256, '434728a410a78f56fc1b5899c3593436e61ab0c731e9072d95e96db290205e53');
  assert.equal(result.get(paths[1]!)!.content!.length, 0);
  assert.equal(result.get(paths[2]!)!.link, 'a file');
  assert.equal(result.get(paths[3]!)!.stat!.type, 'directory');
  assert.equal(result.get(paths[4]!)!.stat, null);
  assert.throws(() => parseBatch(read, nonce, paths.slice(0, 4), 2), BatchMismatch);
});

test('the batched read, run by a real /bin/sh as nobody: a path behind a folder it may not search, and a file it may not read, are refused, not absent', (t) => {
  if (process.getuid?.() !== 0) return t.skip('runs /bin/sh as nobody: run as root');
  const dir = mkdtempSync(join(tmpdir(), 'cairn-batch-denied-'));
  execFileSync('chmod', ['0755', dir]);
  execFileSync('mkdir', ['-m', '0700', join(dir, 'private')]);
  writeFileSync(join(dir, 'private/f'), 'x\n');
  writeFileSync(join(dir, 'secret'), 'x\n', { mode: 0o600 });
  writeFileSync(join(dir, 'open'), 'open\n', { mode: 0o644 });
  const paths = [join(dir, 'secret'), join(dir, 'open'), join(dir, 'private/f'), join(dir, 'private/a/b'), join(dir, 'missing'), join(dir, 'open/x')];
  const nonce = 'cairn-test-nonce';
  const script = `__n=${nonce}\n{\n${REMOTE_FUNCTIONS}\n} >/dev/null\n__cairn_read 2 ${paths.map(shellQuote).join(' ')}`;
  const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }));
  const read = execFileSync('/bin/sh', ['-c', script], { uid: nobody, gid: Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' })) });
  const result = parseBatch(read, nonce, paths, 2);
  assert.deepEqual(paths.map((p) => [result.get(p)!.stat?.type ?? null, result.get(p)!.denied ?? null]), [
    ['file', 'content'], ['file', null], [null, 'path'], [null, 'path'], [null, null], [null, null],
  ]);
  assert.equal(result.get(paths[0]!)!.sha256, undefined);
  assert.equal(result.get(paths[1]!)!.content!.toString(), 'open\n');
});

test('the set-up and the facts, run by a real /bin/sh, read back as this machine and this shell', () => {
  const nonce = 'cairn-test-nonce';
  const shell = spawnSync('/bin/sh', ['-c', `umask 0027\n__n=${nonce}\n${REMOTE_FUNCTIONS}\n${FACTS_SCRIPT}`]);
  const [setupSection, ...factSections] = splitSections(shell.stdout, nonce);
  const hasTimeout = spawnSync('sh', ['-c', 'command -v timeout']).status === 0;
  assert.deepEqual(parseSetup(setupSection!), { pid: shell.pid, umask: '0027', uid: process.getuid!(), gid: process.getgid!(), hasTimeout });
  const facts = parseFacts(factSections);
  const local = localFacts();
  for (const key of ['kernel', 'kernel_release', 'distribution', 'release', 'architecture', 'hostname', 'package_manager', 'memory_mb']) {
    assert.deepEqual(facts[key], local[key], key);
  }
  assert.equal(facts.cpus, Number(execFileSync('getconf', ['_NPROCESSORS_ONLN']).toString()));
  // A login script's chatter before the set-up's four lines is not read as them; a shell whose
  // `id` printed something else is refused rather than guessed at.
  assert.deepEqual(parseSetup(Buffer.from('Welcome!\n4242\n0022\nuid=1000(ann) gid=100(users) groups=100(users)\n-\n')), { pid: 4242, umask: '0022', uid: 1000, gid: 100, hasTimeout: false });
  assert.equal(parseSetup(Buffer.from('4242\n0022\nid: command not found\n-\n')), undefined);
});

test('CPU counts: a plain number, or a sysfs list of online CPUs', () => {
  assert.equal(parseCpuCount('8\n'), 8);
  assert.equal(parseCpuCount('online 0-3,6\n'), 5);
  assert.equal(parseCpuCount('online 0\n'), 1);
  assert.equal(parseCpuCount('online 0-1,4-7,9'), 7);
  assert.equal(parseCpuCount(''), 1);
});
