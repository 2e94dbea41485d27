/**
 * A tiny Linux guest for the one real boot of the guest tests: Debian's kernel and an initramfs
 * of busybox and the few modules it needs (all taken from Debian packages with `apt-get
 * download`, cached by recipe like the lab's root). Its /init prints the user-data of a NoCloud
 * seed cdrom on the serial console, says it is up, and powers off when the ACPI power button is
 * pressed (`virsh shutdown`), as a real OS does.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';

/** Printed on the serial console once the power button is watched. */
export const READY = 'CAIRN-GUEST-READY';

/** Kernel modules /init loads, in this order (each after those it needs). */
const MODULES = ['evdev', 'button', 'scsi_common', 'scsi_mod', 'libata', 'libahci', 'ahci', 'cdrom', 'sr_mod', 'isofs'];

const INIT = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /mnt
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
/bin/busybox mount -t devtmpfs dev /dev
for m in ${MODULES.join(' ')}; do /bin/busybox insmod /modules/$m.ko; done
# A NoCloud seed on a cdrom: show its user-data on the console, as cloud-init would read it.
i=0
while [ ! -b /dev/sr0 ] && [ $i -lt 300 ]; do /bin/busybox sleep 0.1; i=$((i+1)); done
if [ -b /dev/sr0 ] && /bin/busybox mount -t iso9660 -o ro /dev/sr0 /mnt 2>/dev/ttyS0; then
  { echo CAIRN-USER-DATA-BEGIN; /bin/busybox cat /mnt/user-data; echo CAIRN-USER-DATA-END; } > /dev/ttyS0
else
  echo CAIRN-GUEST-NO-SEED > /dev/ttyS0
fi
for e in /sys/class/input/event*; do
  if /bin/busybox grep -q "Power Button" "$e/device/name"; then dev=/dev/input/\${e##*/}; fi
done
if [ -z "$dev" ]; then echo CAIRN-GUEST-NO-POWER-BUTTON > /dev/ttyS0; exec /bin/busybox sleep 1000000; fi
# Open before saying so: a press is delivered only to a reader that has the device open.
exec 3< "$dev"
echo ${READY} > /dev/ttyS0
# One event from the power button (the press; 24 bytes, an input_event) is all it takes: power
# off, as an OS does. Anything else keeps it up, so a test cannot pass by accident.
if /bin/busybox dd bs=24 count=1 of=/dev/null <&3 2>/dev/ttyS0; then
  echo CAIRN-GUEST-POWEROFF > /dev/ttyS0
  /bin/busybox poweroff -f
fi
echo CAIRN-GUEST-READ-FAILED > /dev/ttyS0
exec /bin/busybox sleep 1000000
`;

interface Entry { name: string; mode: number; data?: Buffer; rdev?: [number, number] }

/** The cpio "newc" format the kernel unpacks an initramfs from. */
function cpio(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  const pad = (n: number) => Buffer.alloc((4 - (n % 4)) % 4);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  let ino = 1;
  for (const e of [...entries, { name: 'TRAILER!!!', mode: 0 }]) {
    const data = e.data ?? Buffer.alloc(0);
    const name = Buffer.from(`${e.name}\0`);
    const header = `070701${hex(ino++)}${hex(e.mode)}${hex(0)}${hex(0)}${hex(1)}${hex(0)}${hex(data.length)}${hex(0)}${hex(0)}` +
      `${hex(e.rdev?.[0] ?? 0)}${hex(e.rdev?.[1] ?? 0)}${hex(name.length)}${hex(0)}`;
    parts.push(Buffer.from(header), name, pad(110 + name.length), data, pad(data.length));
  }
  return Buffer.concat(parts);
}

/** Why the tiny Linux cannot be had here (no Debian packages reachable), or its kernel and initrd. */
export function tinyLinux(cacheRoot = '/var/tmp/cairn-test-cache'): { kernel: string; initrd: string } | { unavailable: string } {
  const recipe = createHash('sha256').update(INIT).update(`linux-image-amd64 busybox-static ${MODULES.join(',')} v5`).digest('hex').slice(0, 16);
  const dir = join(cacheRoot, `tiny-linux-${recipe}`);
  const kernel = join(dir, 'vmlinuz');
  const initrd = join(dir, 'initrd.gz');
  if (existsSync(kernel) && existsSync(initrd)) return { kernel, initrd };
  mkdirSync(cacheRoot, { recursive: true });
  const work = mkdtempSync(join(cacheRoot, 'tiny-linux-build-'));
  try {
    const depends = execFileSync('apt-cache', ['depends', 'linux-image-amd64'], { encoding: 'utf8' });
    const image = /Depends: (linux-image-\S+)/.exec(depends)?.[1];
    if (!image) return { unavailable: `apt-cache knows no kernel for linux-image-amd64: ${depends.trim()}` };
    try {
      execFileSync('apt-get', ['download', image, 'busybox-static'], { cwd: work, stdio: 'pipe' });
    } catch (err) {
      return { unavailable: `apt-get download ${image} busybox-static failed: ${(err as { stderr?: Buffer }).stderr?.toString().trim()}` };
    }
    const debs = execFileSync('sh', ['-c', 'ls *.deb'], { cwd: work, encoding: 'utf8' }).trim().split('\n');
    for (const deb of debs) execFileSync('dpkg-deb', ['-x', deb, 'root'], { cwd: work });
    const root = join(work, 'root');
    const vmlinuz = execFileSync('sh', ['-c', 'ls boot/vmlinuz-*'], { cwd: root, encoding: 'utf8' }).trim();
    const modules: Entry[] = [{ name: 'modules', mode: 0o40755 }];
    for (const name of MODULES) {
      const path = execFileSync('sh', ['-c', `find lib/modules usr/lib/modules -name ${name}.ko 2>/dev/null | head -1`], { cwd: root, encoding: 'utf8' }).trim();
      if (!path) return { unavailable: `${image} has no ${name}.ko` };
      modules.push({ name: `modules/${name}.ko`, mode: 0o100644, data: readFileSync(join(root, path)) });
    }
    const staged = join(work, 'out');
    mkdirSync(staged);
    writeFileSync(join(staged, 'vmlinuz'), readFileSync(join(root, vmlinuz)));
    writeFileSync(join(staged, 'initrd.gz'), gzipSync(cpio([
      { name: 'bin', mode: 0o40755 },
      { name: 'dev', mode: 0o40755 },
      { name: 'dev/console', mode: 0o20600, rdev: [5, 1] },
      { name: 'bin/busybox', mode: 0o100755, data: readFileSync(join(root, 'bin/busybox')) },
      ...modules,
      { name: 'init', mode: 0o100755, data: Buffer.from(INIT) },
    ])));
    // Whole or not at all: another test process may be making the same recipe.
    try {
      renameSync(staged, dir);
    } catch (err) {
      if (!existsSync(kernel)) throw err;
    }
    return { kernel, initrd };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
