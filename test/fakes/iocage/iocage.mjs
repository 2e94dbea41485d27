/**
 * A stateful fake of iocage(8) for contract tests: FreeBSD jails cannot run here, so this keeps
 * jails as folders and reproduces the real command line's contract, read from iocage/iocage
 * @ cbf0f600 (iocage_cli/*.py, iocage_lib/ioc_*.py) and freebsd/iocage's `list -H` fix:
 *
 * - logit levels INFO, NOTICE, VERBOSE on stdout; WARNING, ERROR on stderr; EXCEPTION on stderr
 *   and exit 1 (the CLI is INTERACTIVE: no traceback);
 * - a jail is found by its exact folder under jails/ or templates/, else by a unique prefix
 *   (`Multiple jails found for X:` / `jail 'X' not found!`);
 * - `list -Hl`: tab-separated `JID NAME BOOT STATE TYPE RELEASE IP4 IP6 TEMPLATE BASEJAIL`, a
 *   stopped jail's JID printed as `None` (freebsd/iocage joins `map(str, row)`);
 * - `fstab -a` stores the destination under `<iocroot>/jails/NAME/root`; `fstab -Hl` prints
 *   `idx\tsrc\tdst\tfs\topts\tdump\tpass`;
 * - `stop` of a stopped jail says `NAME is not running!` on stderr and exits 0;
 * - create interrupted by SIGINT (Ctrl-C) destroys what it made (`Keyboard interrupt detected,
 *   destroyed NAME.`); killed by SIGTERM, it leaves the half-made jail, as Python's default does.
 *
 * State: the folder $IOCAGE_FAKE_ROOT (the iocroot): jails/NAME/{config.json,fstab,root/},
 * templates/NAME/…, releases/REL/{root/,patch}, jids.json, and `log`, one line per invocation
 * (`iocage ARGS…`) and per event the tests assert on (`event: start NAME`, `event: stop NAME`).
 * $IOCAGE_FAKE_BLOCK_CREATE=NAME makes `create` of NAME block, after writing its config, until
 * it is signalled (logged as `event: create NAME blocking`).
 */
import { appendFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { setInterval } from 'node:timers';
import { join } from 'node:path';

const ROOT = process.env.IOCAGE_FAKE_ROOT;
if (!ROOT) {
  process.stderr.write('iocage (fake): IOCAGE_FAKE_ROOT is not set\n');
  process.exit(70);
}
mkdirSync(join(ROOT, 'jails'), { recursive: true });
mkdirSync(join(ROOT, 'templates'), { recursive: true });
mkdirSync(join(ROOT, 'releases'), { recursive: true });

const log = (line) => appendFileSync(join(ROOT, 'log'), `${line}\n`);
log(`iocage ${process.argv.slice(2).join(' ')}`);

const info = (message) => process.stdout.write(`${message}\n`);
const warn = (message) => process.stderr.write(`${message}\n`);
/** logit EXCEPTION: the message on stderr, exit 1. */
function exception(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

// ioc_json.py retrieve_default_props (a subset) and truthy_props.
const DEFAULTS = {
  CONFIG_VERSION: '33', interfaces: 'vnet0:bridge0', host_domainname: 'none', exec_fib: '0', ip4_addr: 'none',
  ip4_saddrsel: '1', ip4: 'new', ip6_addr: 'none', ip6_saddrsel: '1', ip6: 'new', defaultrouter: 'auto',
  defaultrouter6: 'auto', resolver: '/etc/resolv.conf', devfs_ruleset: '4', exec_start: '/bin/sh /etc/rc',
  exec_stop: '/bin/sh /etc/rc.shutdown', exec_prestart: '/usr/bin/true', exec_poststart: '/usr/bin/true',
  exec_prestop: '/usr/bin/true', exec_poststop: '/usr/bin/true', exec_clean: 1, exec_timeout: '60', stop_timeout: '30',
  mount_devfs: 1, mount_fdescfs: 1, enforce_statfs: '2', children_max: '0', login_flags: '-f root', securelevel: '2',
  sysvmsg: 'new', sysvsem: 'new', sysvshm: 'new', allow_set_hostname: 1, allow_sysvipc: 0, allow_raw_sockets: 0,
  allow_chflags: 0, allow_mlock: 0, allow_mount: 0, allow_mount_devfs: 0, allow_mount_nullfs: 0, allow_mount_tmpfs: 0,
  allow_quotas: 0, allow_socket_af: 0, allow_tun: 0, allow_vmm: 0, cpuset: 'off', rlimits: 'off', memoryuse: 'off',
  pcpu: 'off', openfiles: 'off', maxproc: 'off', host_time: 1, bpf: 0, dhcp: 0, nat: 0, ip_hostname: 0, vnet: 0, boot: 0, template: 0,
  basejail: 0, jail_zfs: 0, jail_zfs_dataset: 'iocage/jails/${host_hostuuid}/data', priority: '99', notes: 'none',
  type: 'jail', release: 'none', host_hostname: 'none', host_hostuuid: 'none', last_started: 'none',
};
const TRUTHY = new Set(['bpf', 'template', 'nat', 'ip_hostname', 'host_time', 'basejail', 'dhcp', 'vnet', 'rtsold', 'jail_zfs', 'hostid_strict_check', 'boot',
  'exec_clean', 'mount_linprocfs', 'mount_procfs', 'allow_vmm', 'allow_tun', 'allow_socket_af', 'allow_quotas', 'allow_mount_zfs',
  'allow_mount_tmpfs', 'allow_mount_procfs', 'allow_mount_nullfs', 'allow_mount_fusefs', 'allow_mount_devfs', 'allow_mount_fdescfs',
  'allow_mount', 'allow_mlock', 'allow_chflags', 'allow_raw_sockets', 'allow_sysvipc', 'allow_set_hostname', 'mount_fdescfs',
  'mount_devfs', 'ip6_saddrsel', 'ip4_saddrsel']);
const truthy = (v) => (['1', 'on', 'yes', 'true'].includes(String(v).toLowerCase()) ? 1 : 0);

const readJson = (path, fallback) => (existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : fallback);
const jids = () => readJson(join(ROOT, 'jids.json'), {});
const saveJids = (j) => writeFileSync(join(ROOT, 'jids.json'), JSON.stringify(j));

/** Every jail or template: name → its folder. */
function allJails() {
  const out = new Map();
  for (const kind of ['jails', 'templates']) {
    for (const name of readdirSync(join(ROOT, kind))) out.set(name, join(ROOT, kind, name));
  }
  return out;
}

/** iocage.py __check_jail_existence__: an exact folder, else a unique prefix. */
function findJail(name) {
  const all = allJails();
  if (all.has(name)) return { name, dir: all.get(name) };
  const matches = [...all.keys()].filter((n) => n.startsWith(name));
  if (matches.length > 1) {
    exception(`Multiple jails found for ${name}:\n${matches.sort().map((m) => `  ${m} (${all.get(m)})`).join('\n')}`);
  }
  if (matches.length === 0) exception(`jail '${name}' not found!`);
  return { name: matches[0], dir: all.get(matches[0]) };
}

const configOf = (dir) => readJson(join(dir, 'config.json'), undefined);
const writeConfig = (dir, conf) => writeFileSync(join(dir, 'config.json'), `${JSON.stringify(conf, null, 4)}\n`);
const fullConfig = (conf) => ({ ...DEFAULTS, ...conf });

/** Options of one command: `spec` maps a flag to its long name and whether it takes a value. */
function parse(args, spec) {
  const opts = {};
  const positional = [];
  // click takes short flags together (`-Hl`).
  const expanded = args.flatMap((a) => (/^-[a-zA-Z]{2,}$/.test(a) && [...a.slice(1)].every((c) => spec[`-${c}`] && !spec[`-${c}`].value)
    ? [...a.slice(1)].map((c) => `-${c}`) : [a]));
  for (let i = 0; i < expanded.length; i++) {
    const a = expanded[i];
    const known = spec[a];
    if (known) {
      if (known.value) opts[known.name] = expanded[++i];
      else opts[known.name] = true;
    } else if (a.startsWith('-') && a.length > 1 && positional.length === 0 && !spec.passThrough) {
      exception(`Error: No such option: ${a}`);
    } else positional.push(a);
  }
  return { opts, positional };
}

function listRow(name, dir) {
  const conf = fullConfig(configOf(dir) ?? {});
  const jid = jids()[name];
  const ip4 = conf.ip4_addr === 'none' ? '-' : conf.ip4_addr;
  const ip6 = conf.ip6_addr === 'none' ? '-' : conf.ip6_addr;
  return {
    jid: jid === undefined ? 'None' : String(jid), name, boot: truthy(conf.boot) ? 'on' : 'off', state: jid === undefined ? 'down' : 'up',
    type: conf.type, release: conf.release, ip4, ip6, template: conf.type === 'template' ? '-' : conf.source_template ?? '-',
    basejail: truthy(conf.basejail) ? 'yes' : 'no',
    shortIp4: ip4 === '-' ? '-' : ip4.split(',').map((i) => (i.includes('|') ? i.split('|')[1] : i).split('/')[0]).join(','),
    shortRelease: conf.release.split('-').slice(0, 2).join('-'),
  };
}

/** texttable's layout: `+---+` rules, `+===+` under the header, a rule after every row. */
function texttable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const rule = (c) => `+${widths.map((w) => c.repeat(w + 2)).join('+')}+`;
  const centre = (s, w) => {
    const left = Math.floor((w - s.length) / 2);
    return `${' '.repeat(left)}${s}${' '.repeat(w - s.length - left)}`;
  };
  const line = (cells, fmt) => `|${cells.map((c, i) => ` ${fmt(c, widths[i])} `).join('|')}|`;
  const out = [rule('-'), line(header, centre), rule('=')];
  for (const r of rows) out.push(line(r, (c, w) => c.padEnd(w)), rule('-'));
  return out.join('\n');
}

function list(args) {
  const { opts } = parse(args, { '-H': { name: 'noHeader' }, '-h': { name: 'noHeader' }, '--header': { name: 'noHeader' }, '-l': { name: 'long' }, '--long': { name: 'long' }, '-t': { name: 'templates' }, '-r': { name: 'releases' } });
  if (opts.releases) {
    const rels = readdirSync(join(ROOT, 'releases')).sort();
    if (opts.noHeader) rels.forEach((r) => info(r));
    else info(texttable(['Bases fetched'], rels.map((r) => [r])));
    return;
  }
  const kind = opts.templates ? 'templates' : 'jails';
  const rows = readdirSync(join(ROOT, kind)).sort().map((n) => listRow(n, join(ROOT, kind, n)));
  const header = opts.long ? ['JID', 'NAME', 'BOOT', 'STATE', 'TYPE', 'RELEASE', 'IP4', 'IP6', 'TEMPLATE', 'BASEJAIL'] : ['JID', 'NAME', 'STATE', 'RELEASE', 'IP4'];
  const cells = rows.map((r) => (opts.long
    ? [r.jid, r.name, r.boot, r.state, r.type, r.release, r.ip4, r.ip6, r.template, r.basejail]
    : [r.jid, r.name, r.state, r.shortRelease, r.shortIp4]));
  if (opts.noHeader) cells.forEach((c) => info(c.join('\t')));
  else info(texttable(header, cells.map((c) => (opts.long ? c : c.map((v) => (v === 'None' ? '-' : v))))));
}

function get(args) {
  const { opts, positional } = parse(args, { '-a': { name: 'all' }, '--all': { name: 'all' }, '-s': { name: 'state' }, '-j': { name: 'jid' } });
  let [prop, name] = positional;
  if (opts.all || opts.state || opts.jid) {
    name = prop;
    prop = opts.all ? 'all' : opts.state ? 'state' : 'jid';
  }
  if (!name) exception('You must specify a jail!');
  if (name === 'default') {
    if (prop === 'all') {
      for (const k of Object.keys(DEFAULTS).sort()) info(`${k}:${DEFAULTS[k]}`);
    } else if (prop in DEFAULTS) info(String(DEFAULTS[prop]));
    else exception(`${prop} is not a valid property!`);
    return;
  }
  const jail = findJail(name);
  const conf = fullConfig(configOf(jail.dir));
  const jid = jids()[jail.name];
  if (prop === 'state') info(jid === undefined ? 'down' : 'up');
  else if (prop === 'jid') info(jid === undefined ? 'None' : String(jid));
  else if (prop === 'all') {
    const all = { ...conf, state: jid === undefined ? 'down' : 'up' };
    delete all.source_template;
    for (const k of Object.keys(all).sort()) info(`${k}:${all[k]}`);
  } else if (prop in conf && prop !== 'source_template') info(String(conf[prop]));
  else exception(`${prop} is not a valid property!`);
}

/** ioc_json.py json_check_prop, as far as this fake goes: known keys only; ip addresses lose their spaces. */
function checkProp(key, value) {
  if (!(key in DEFAULTS)) exception(`${key} is not a valid property!`);
  if (key === 'ip4_addr' || key === 'ip6_addr') return value.replace(/\s/g, '');
  return TRUTHY.has(key) ? truthy(value) : value;
}

function splitProp(p) {
  const at = p.indexOf('=');
  if (at < 0) exception(`Please specify a valid property: ${p}`);
  return [p.slice(0, at), p.slice(at + 1)];
}

function set(args) {
  const { positional } = parse(args, {});
  const name = positional.pop();
  if (!name || positional.length === 0) exception('You must specify a jail!');
  const jail = findJail(name);
  let dir = jail.dir;
  for (const p of positional) {
    const [key, raw] = splitProp(p);
    const conf = configOf(dir);
    const full = fullConfig(conf);
    if (key === 'template') {
      const want = truthy(raw);
      if (want === truthy(full.template)) exception(`${jail.name} is already a ${want ? 'template' : 'jail'}!`);
      if (jids()[jail.name] !== undefined) exception(`${jail.name} is running.\nPlease stop it first!`);
      const to = join(ROOT, want ? 'templates' : 'jails', jail.name);
      renameSync(dir, to);
      dir = to;
      writeConfig(dir, { ...conf, template: want, type: want ? 'template' : 'jail' });
      info(`${jail.name} converted to a ${want ? 'template' : 'jail'}.`);
      continue;
    }
    const value = checkProp(key, raw);
    const old = TRUTHY.has(key) ? truthy(full[key]) : full[key];
    writeConfig(dir, { ...conf, [key]: value });
    info(`${key}: ${old} -> ${value}`);
  }
}

function releaseDir(release) {
  return join(ROOT, 'releases', release);
}

function create(args) {
  const { opts, positional } = parse(args, {
    '-r': { name: 'release', value: true }, '--release': { name: 'release', value: true },
    '-t': { name: 'template', value: true }, '--template': { name: 'template', value: true },
    '-n': { name: 'name', value: true }, '--name': { name: 'name', value: true },
    '-p': { name: 'pkglist', value: true }, '--pkglist': { name: 'pkglist', value: true },
    '-e': { name: 'empty' }, '-b': { name: 'basejail' }, '-T': { name: 'thickjail' },
  });
  const name = opts.name;
  if (name === undefined) exception('iocage (fake): only named jails (-n NAME) are reproduced');
  if (!/^[a-zA-Z0-9._-]+$/.test(name)) exception(`Invalid character in ${name}, please remove it.`);
  if (opts.release && opts.release.includes('=')) exception('Please supply a valid RELEASE!');
  let pkgs;
  if (opts.pkglist) {
    const format = '\n{\n    "pkgs": [\n    "foo",\n    "bar"\n    ]\n}';
    if (!existsSync(opts.pkglist)) exception(`${opts.pkglist} does not exist!\nPlease supply a JSON file with the format: ${format}`);
    try {
      pkgs = JSON.parse(readFileSync(opts.pkglist, 'utf8')).pkgs;
      if (!Array.isArray(pkgs)) throw new Error('no pkgs');
    } catch {
      exception(`Please supply a valid JSON file with the format:${format}`);
    }
  }
  // ioc_common.py match_to_dir: jail(8) turns dots into underscores, so foo.bar and foo_bar are one name.
  const same = (n) => n.replace(/\./g, '_');
  if ([...allJails().keys()].some((n) => same(n) === same(name))) exception(`Jail: ${name} already exists!`);
  const props = positional.map(splitProp).map(([k, v]) => [k, k === 'template' ? truthy(v) : checkProp(k, v)]);
  let release;
  let source;
  let sourceTemplate;
  if (opts.template) {
    const t = join(ROOT, 'templates', opts.template);
    if (!existsSync(t)) {
      warn(`Template: ${opts.template} not found!`);
      exception(`Created Templates:${readdirSync(join(ROOT, 'templates')).sort().map((n) => `\n  ${n}`).join('')}`);
    }
    release = configOf(t).release;
    source = join(t, 'root');
    sourceTemplate = opts.template;
  } else {
    const rel = opts.release;
    if (!rel || !existsSync(releaseDir(rel))) exception(`RELEASE: ${rel} not found!`);
    const patch = existsSync(join(releaseDir(rel), 'patch')) ? readFileSync(join(releaseDir(rel), 'patch'), 'utf8').trim() : '';
    release = patch ? `${rel}-${patch}` : rel;
    source = join(releaseDir(rel), 'root');
  }
  const isTemplate = props.some(([k, v]) => k === 'template' && v === 1);
  const dir = join(ROOT, isTemplate ? 'templates' : 'jails', name);
  process.on('SIGINT', () => {
    // ioc_create.py create_jail: KeyboardInterrupt destroys what was made.
    rmSync(dir, { recursive: true, force: true });
    log(`event: create ${name} interrupted`);
    exception(`Keyboard interrupt detected, destroyed ${name}.`);
  });
  mkdirSync(dir, { recursive: true });
  const conf = { host_hostuuid: name, host_hostname: name, release, type: isTemplate ? 'template' : 'jail', jail_zfs_dataset: `iocage/jails/${name}/data` };
  if (sourceTemplate) conf.source_template = sourceTemplate;
  for (const [k, v] of props) conf[k] = v;
  writeConfig(dir, conf);
  if (process.env.IOCAGE_FAKE_BLOCK_CREATE === name) {
    log(`event: create ${name} blocking`);
    setInterval(() => undefined, 1 << 30);
    return;
  }
  finishCreate(dir, source, conf, name, pkgs);
}

function finishCreate(dir, source, conf, name, pkgs) {
  cpSync(source, join(dir, 'root'), { recursive: true });
  writeFileSync(join(dir, 'fstab'), '');
  log(`event: created ${name}`);
  info(`${name} successfully created!`);
  if (pkgs) {
    const full = fullConfig(conf);
    // ioc_create.py: dhcp, ip_hostname or nat give the jail an address of its own.
    if (full.ip4_addr === 'none' && full.ip6_addr === 'none' && !truthy(full.dhcp) && !truthy(full.ip_hostname) && !truthy(full.nat)) {
      warn('You need an IP address for the jail to install packages!\n');
    } else {
      info('\nInstalling pkg... ');
      for (const p of pkgs) info(`Installing: ${p}`);
      writeFileSync(join(dir, 'root', 'pkgs'), pkgs.map((p) => `${p}\n`).join(''));
      log(`event: pkg install ${name} ${pkgs.join(' ')}`);
    }
  }
  if (truthy(conf.boot) && conf.type !== 'template') start([name]);
}

function start(args) {
  const { positional } = parse(args, { '-f': { name: 'force' } });
  for (const n of positional) {
    const jail = findJail(n);
    const conf = fullConfig(configOf(jail.dir));
    if (conf.type === 'template') {
      warn(`Please convert back to a jail before trying to start ${jail.name}`);
      process.exit(1);
    }
    const j = jids();
    if (j[jail.name] !== undefined) exception(`${jail.name} is already running!`);
    const next = Math.max(0, ...Object.values(j)) + 1;
    j[jail.name] = next;
    saveJids(j);
    log(`event: start ${jail.name}`);
    const ips = [conf.ip4_addr !== 'none' ? `ip4.addr=${conf.ip4_addr}` : '', conf.ip6_addr !== 'none' ? `ip6.addr=${conf.ip6_addr}` : ''].filter(Boolean).join(' ');
    info(`* Starting ${jail.name}\n  + Started OK\n  + Using devfs_ruleset: ${conf.devfs_ruleset} (iocage generated default)\n` +
      `  + Using IP options: ${ips ? `${ips} ` : ''}ip4.saddrsel=1 ip4=new ip6.saddrsel=1 ip6=new\n  + Starting services OK\n  + Executing poststart OK`);
  }
}

function stop(args) {
  const { opts, positional } = parse(args, { '-f': { name: 'force' } });
  for (const n of positional) {
    const jail = findJail(n);
    const j = jids();
    if (j[jail.name] === undefined) {
      warn(`${jail.name} is not running!`);
      continue;
    }
    delete j[jail.name];
    saveJids(j);
    log(`event: stop ${jail.name}`);
    info(`* Stopping ${jail.name}\n${opts.force ? '' : '  + Executing prestop OK\n  + Stopping services OK\n'}  + Removing jail process OK\n  + Executing poststop OK`);
  }
}

function destroy(args) {
  const { opts, positional } = parse(args, { '-f': { name: 'force' }, '--force': { name: 'force' }, '-R': { name: 'recursive' } });
  if (positional.length === 0) exception('Please specify one or more jails!');
  for (const n of positional) {
    const jail = findJail(n);
    const j = jids();
    if (!opts.force) {
      warn(`\nThis will destroy jail ${jail.name}`);
      exception('\nAre you sure? [y/N]: Aborted!');
    }
    const children = [...allJails()].filter(([, d]) => configOf(d)?.source_template === jail.name).map(([c]) => c);
    if (children.length && !opts.recursive) {
      exception(`${jail.name} has dependent jails (who may also have dependents), use --recursive to destroy: \n  ${children.join('\n  ')}`);
    }
    if (j[jail.name] !== undefined) {
      info(`Stopping ${jail.name}`);
      delete j[jail.name];
      saveJids(j);
      log(`event: stop ${jail.name}`);
    }
    info(`Destroying ${jail.name}`);
    rmSync(jail.dir, { recursive: true, force: true });
    log(`event: destroy ${jail.name}`);
  }
}

/** fstab lines: `src\tdst\tfs\topts\tdump\tpass # Added by iocage on DATE`. */
function fstabLines(dir) {
  const path = join(dir, 'fstab');
  return existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '') : [];
}

function fstab(args) {
  const { opts, positional } = parse(args, { '-a': { name: 'add' }, '--add': { name: 'add' }, '-r': { name: 'remove' }, '--remove': { name: 'remove' }, '-l': { name: 'list' }, '--list': { name: 'list' }, '-H': { name: 'noHeader' }, '-h': { name: 'noHeader' } });
  const [name, ...entry] = positional;
  if (!name) exception('Please supply an fstab entry or jail!');
  const jail = findJail(name);
  const jailRoot = join(jail.dir, 'root');
  const lines = fstabLines(jail.dir);
  if (opts.list) {
    const rows = lines.map((l, i) => [String(i), l.split('#')[0].trim().split(/\s+/)]);
    if (opts.noHeader) rows.forEach(([i, f]) => info(`${i}\t${f.join('\t')}`));
    else info(texttable(['INDEX', 'FSTAB ENTRY'], rows.map(([i, f]) => [i, f.join('\t')])));
    return;
  }
  if (entry.length === 0) exception('Please supply an fstab entry or jail!');
  let fields;
  let index;
  if (entry.length === 1) {
    const parts = entry[0].split(/\s+/).filter(Boolean);
    if (parts.length === 6) fields = parts;
    else if (/^\d+$/.test(entry[0])) index = Number(entry[0]);
    else fields = [entry[0], entry[0], 'nullfs', 'ro', '0', '0'];
  } else if (entry.length === 6) fields = entry;
  else exception('Please specify a valid fstab entry!\n\nExample:\n  /the/source /dest FSTYPE FSOPTIONS FSDUMP FSPASS');
  if (fields) fields[1] = `${jailRoot}${fields[1]}`;
  const mount = fields?.join('\t');
  if (opts.add) {
    const [src, dst, fs] = fields;
    const errors = [];
    if (lines.some((l) => l.split(/\s+/)[1] === dst)) errors.push(`Destination: ${dst} already exists!`);
    else if (!isDir(dst)) errors.push(`Destination: ${dst} does not exist or is not a directory.`);
    if (fs === 'nullfs' && !isDir(src)) errors.push(`Source: ${src} does not exist!`);
    if (fs === 'nullfs' && !src.startsWith('/')) errors.push(`Source: ${src} must use an absolute path!`);
    if (errors.length) exception(errors.join('\n'));
    writeFileSync(join(jail.dir, 'fstab'), [...lines, `${mount} # Added by iocage on ${new Date().toISOString().slice(0, 19).replace('T', ' ')}`].map((l) => `${l}\n`).join(''));
    if (jids()[jail.name] !== undefined) log(`event: mount ${jail.name} ${dst}`);
    info(`Successfully added mount to ${jail.name}'s fstab`);
  } else if (opts.remove) {
    const kept = lines.filter((l, i) => !(l.split('#')[0].trim() === mount || i === index));
    if (kept.length === lines.length) exception('No matching fstab entry.');
    writeFileSync(join(jail.dir, 'fstab'), kept.map((l) => `${l}\n`).join(''));
    info(`Successfully removed mount from ${jail.name}'s fstab`);
  } else exception('Please supply an action: --add, --remove, --list, --edit or --replace');
}

function isDir(path) {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * `exec NAME CMD…`: one argument is run by `/bin/sh -c` (iocage_cli/exec.py). The fake runs it
 * with the host's sh in the jail's root folder (no jail here), stdin passed through, and keeps
 * what it ran in the log.
 */
function exec(args) {
  const { opts, positional } = parse(args, { '-f': { name: 'force' }, '--force': { name: 'force' }, passThrough: true });
  const [name, ...command] = positional;
  if (!name) exception('Please specify a jail first!');
  const jail = findJail(name);
  if (jids()[jail.name] === undefined) {
    if (!opts.force) exception(`${jail.name} is not running! Please supply --force (-f) or start the jail`);
    start([jail.name]);
  }
  const argv = command.length === 1 ? ['/bin/sh', '-c', command[0]] : command;
  const stdin = readFileSync(0);
  log(`event: exec ${jail.name} ${argv.join(' ')} <<${JSON.stringify(stdin.toString())}`);
  const r = spawnSync(argv[0], argv.slice(1), { cwd: join(jail.dir, 'root'), input: stdin, stdio: ['pipe', 'inherit', 'inherit'] });
  process.exit(r.status ?? 1);
}

/** `fetch -r REL`: a release's root with the folders a FreeBSD base has. */
function fetch(args) {
  const { opts } = parse(args, { '-r': { name: 'release', value: true }, '--release': { name: 'release', value: true } });
  if (!opts.release) exception('Please supply a RELEASE!');
  const root = join(releaseDir(opts.release), 'root');
  for (const d of ['bin', 'etc', 'media', 'mnt', 'root', 'tmp', 'usr/local', 'var']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'etc', 'freebsd-version'), `${opts.release}\n`);
  writeFileSync(join(releaseDir(opts.release), 'patch'), `${process.env.IOCAGE_FAKE_PATCH ?? 'p4'}\n`);
  info(`Fetching: ${opts.release}\n${opts.release} fetched.`);
}

const [command, ...rest] = process.argv.slice(2);
const commands = { list, get, set, create, start, stop, destroy, fstab, exec, fetch, restart: (a) => { stop(a); start(a); } };
if (!command || !(command in commands)) {
  process.stderr.write(`Usage: iocage [OPTIONS] COMMAND [ARGS]...\nTry 'iocage --help' for help.\n\nError: No such command '${command ?? ''}'.\n`);
  process.exit(2);
}
commands[command](rest);
