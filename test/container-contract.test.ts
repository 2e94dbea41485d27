/**
 * The `container` type's `nspawn` provider where a lab host cannot show it: an image from a
 * provisioning profile (DESIGN §10), and a host without systemd-container. CONTRACT TESTS. The provisioner is a stand-in ImageBuilder that records the request and
 * answers with a root folder, and the target is the scripted executor (machinectl and systemd
 * as PID 1 cannot run on this machine; the real nspawn provider runs on lab hosts in
 * lab-container.test.ts, where images come from a root folder and a raw disk image).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildCatalog } from '../src/catalog/catalog.ts';
import { compile } from '../src/catalog/compile.ts';
import { Engine, type NodeResult } from '../src/engine/engine.ts';
import { buildGraph } from '../src/graph/build.ts';
import { Diagnostics } from '../src/lib/errors.ts';
import type { ImageBuilder, ImageBuildRequest } from '../src/resources/type.ts';
import { loadSite } from '../src/site/load.ts';
import { makeSite } from './helpers/cli.ts';
import { ScriptedExecutor } from './helpers/scripted-executor.ts';

const FACTS = { os_family: 'debian', distribution: 'debian', release: '12', init_system: 'systemd', package_manager: 'apt' };

async function apply(exec: ScriptedExecutor, images: ImageBuilder | undefined, image = '{ profile: debian-base, args: { suite: bookworm } }', mode: 'plan' | 'apply' = 'apply'): Promise<NodeResult[]> {
  const d = new Diagnostics();
  const catalog = buildCatalog(await loadSite(makeSite({
    'cairn.yaml': 'targets:\n  t1:\n    executor: local\n    state_dir: /var/lib/cairn-test\n    run: [s]\n',
    'states/s.yaml': `s:\n  - container: box\n    image: ${image}\n    state: stopped\n    user_data: "echo hi"\n`,
  }), d), d);
  d.throwIfAny();
  const run = compile(catalog, [...catalog.targets.values()][0]!, { facts: FACTS });
  return new Engine(run, buildGraph(run), exec, { mode, ...(images ? { images } : {}) }).execute();
}

/** A host with machinectl and no machine: every command answered as systemd-container would. */
function host(name = 'local'): ScriptedExecutor {
  const exec = new ScriptedExecutor([
    { when: /^sh -c for t in machinectl/ },
    { when: 'machinectl show box', code: 1, stderr: 'Could not get path to machine: No machine \'box\' known\n' },
    { when: 'systemctl is-enabled systemd-nspawn@box.service', code: 1, stdout: 'disabled\n' },
    { when: 'mkdir -p', effect: (e, argv) => e.dirs.add(argv.at(-1)!) },
    {
      when: /^sh -c echo \$\$ > "\$1" && \{ \[ ! -e "\$1\.stop" \] \|\| exit 137; \} && exec cp -a /,
      effect: (e, argv) => {
        e.dirs.add(argv.at(-1)!);
        e.dirs.add(`${argv.at(-1)!}/etc`);
      },
    },
    {
      when: /^mv -T -- /,
      effect: (e, argv) => {
        e.dirs.delete(argv.at(-2)!);
        e.dirs.add(argv.at(-1)!);
      },
    },
  ], name);
  // The first-boot unit is enabled by a link in the image: kept as a note here.
  (exec as { symlink: (target: string, path: string) => Promise<void> }).symlink = async (target, path) => {
    links.set(path, target);
  };
  return exec;
}

const links = new Map<string, string>();

test('provider contract: nspawn — image: { profile } is built by the provisioner into a hidden folder, copied in beside, and recorded', async () => {
  const requests: ImageBuildRequest[] = [];
  const images: ImageBuilder = {
    async build(request) {
      requests.push(request);
      request.progress({ done: 1, total: 1, step: 'debootstrap' });
      return { disks: [], root: `${request.outputDir}/root` };
    },
  };
  const exec = host();
  const [node] = await apply(exec, images);
  assert.deepEqual([node!.status, node!.action], ['changed', 'create'], node!.error);
  assert.equal(requests.length, 1);
  const { profile, name, kind, outputDir, args, user_data } = requests[0]!;
  assert.deepEqual({ profile, name, kind, outputDir, args, user_data },
    { profile: 'debian-base', name: 'box', kind: 'container', outputDir: '/var/lib/machines/.box.cairn-build', args: { suite: 'bookworm' }, user_data: 'echo hi' });
  const lines = exec.lines;
  const copy = lines.indexOf('sh -c echo $$ > "$1" && { [ ! -e "$1.stop" ] || exit 137; } && exec cp -a --reflink=auto --sparse=always -- "$2" "$3" cairn-copy /var/lib/machines/.box.cairn-copy.pid ' +
    '/var/lib/machines/.box.cairn-build/root /var/lib/machines/.box.cairn-new');
  const swap = lines.indexOf('mv -T -- /var/lib/machines/.box.cairn-new /var/lib/machines/box');
  assert.ok(copy >= 0 && swap > copy, lines.join('\n'));
  // The built root gets the container's name and the first-boot unit for its user data.
  assert.equal(exec.files.get('/var/lib/machines/.box.cairn-new/etc/hostname')?.data.toString(), 'box\n');
  assert.equal(exec.files.get('/var/lib/machines/.box.cairn-new/var/lib/cairn-user-data/user-data')?.data.toString(), 'echo hi');
  assert.equal(links.get('/var/lib/machines/.box.cairn-new/etc/systemd/system/multi-user.target.wants/cairn-user-data.service'), '/etc/systemd/system/cairn-user-data.service');
  assert.equal(exec.files.get('/etc/systemd/nspawn/box.nspawn')?.data.toString(),
    '# cairn container; image: {"profile":"debian-base","args":{"suite":"bookworm"}}\n\n[Network]\nPrivate=yes\nVirtualEthernet=no\n');
  assert.equal(exec.dirs.has('/var/lib/machines/.box.cairn-build'), false, 'the build folder is removed');
  assert.ok(!lines.some((l) => l.startsWith('machinectl start')), 'state: stopped starts nothing');
});

test('provider contract: nspawn — image: { profile } without a provisioner fails the node saying so, and makes nothing', async () => {
  const exec = host();
  const [node] = await apply(exec, undefined);
  assert.equal(node!.status, 'failed');
  assert.match(node!.error ?? '', /image: \{ profile: debian-base \} needs the provisioner, and this run has none/);
  assert.ok(!exec.lines.some((l) => l.includes('exec cp ') || l.startsWith('mv ')), exec.lines.join('\n'));
  assert.equal(exec.files.has('/etc/systemd/nspawn/box.nspawn'), false);
});

test('provider contract: nspawn — image: { profile } through a remote executor fails the node: the build runs where Cairn runs', async () => {
  const images: ImageBuilder = { build: () => Promise.reject(new Error('must not be called')) };
  const [node] = await apply(host('ssh'), images);
  assert.equal(node!.status, 'failed');
  assert.match(node!.error ?? '', /builds on the machine Cairn runs on: converge this container through the local executor/);
});

test('provider contract: nspawn — a host without systemd-container: plan shows a create, apply fails naming the package and changes nothing', async () => {
  const bare = () => new ScriptedExecutor([{ when: /^sh -c for t in machinectl/, stdout: 'machinectl\nsystemd-nspawn\n' }], 'local');
  const [planned] = await apply(bare(), undefined, '/srv/roots/bookworm', 'plan');
  assert.deepEqual([planned!.status, planned!.action], ['would-change', 'create']);
  const exec = bare();
  const [node] = await apply(exec, undefined, '/srv/roots/bookworm');
  assert.equal(node!.status, 'failed');
  assert.equal(node!.error, 'machinectl, systemd-nspawn not found on the target: the nspawn provider needs systemd-container (apt-get install systemd-container)');
  assert.deepEqual(exec.lines.filter((l) => !l.startsWith('sh -c for t in')), []);
});
