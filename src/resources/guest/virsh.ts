/**
 * `virsh` as the libvirt provider uses it: each command its own connection to `uri`, run through
 * the target's executor (so a guest on a remote host is managed over SSH the same way), and the
 * tables virsh prints read back into plain values.
 */
import type { RunResult } from '../../executors/types.ts';
import { outputTail } from '../commands.ts';
import { ApplyError, type ProviderContext } from '../type.ts';

export class Virsh {
  /**
   * `cancellable: false` for the commands that undo a half-made change: a cancelled run must
   * still get to put things back.
   */
  constructor(private readonly ctx: ProviderContext, readonly uri: string, private readonly cancellable = true) {}

  run(args: string[]): Promise<RunResult> {
    return this.ctx.exec.run(['virsh', '-q', '-c', this.uri, ...args], this.cancellable ? { signal: this.ctx.signal } : {});
  }

  /** Runs a virsh command that must succeed; its own words make the error. */
  async must(args: string[]): Promise<string> {
    const r = await this.run(args);
    if (r.code !== 0 && this.cancellable && this.ctx.signal.aborted) throw new ApplyError(`the run was cancelled (during virsh ${args[0]})`);
    if (r.code !== 0) throw virshError(args, r);
    return r.stdout;
  }
}

export function virshError(args: string[], r: RunResult): ApplyError {
  const said = outputTail(`${r.stderr}\n${r.stdout}`, 8);
  return new ApplyError(`virsh ${args.join(' ')} exited with ${r.code}${said ? `:\n${said}` : ''}`);
}

/** virsh's way of saying a domain does not exist (libvirt's VIR_ERR_NO_DOMAIN). */
export function noSuchDomain(r: RunResult): boolean {
  return /failed to get domain|Domain not found|no domain with matching name/i.test(r.stderr);
}

/** `virsh dominfo`: `Key:   value` lines. */
export function parseFields(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line.trim());
    if (m) fields[m[1]!.trim()] = m[2]!.trim();
  }
  return fields;
}

/** The rows of a virsh table printed with `-q` (no header): whitespace-separated columns. */
function rows(text: string): string[][] {
  return text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^-+$/.test(l)).map((l) => l.split(/\s+/));
}

export interface BlockDevice {
  type: string;
  device: 'disk' | 'cdrom' | string;
  target: string;
  /** `-` for an empty cdrom drive. */
  source: string;
}

/** `virsh domblklist --details`: Type Device Target Source. */
export function parseBlockList(text: string): BlockDevice[] {
  return rows(text).filter((r) => r.length >= 4).map(([type, device, target, ...source]) => ({
    type: type!, device: device!, target: target!, source: source.join(' '),
  }));
}

export interface Interface {
  type: string;
  source: string;
  model: string;
  mac: string;
}

/** `virsh domiflist`: Interface Type Source Model MAC. */
export function parseInterfaces(text: string): Interface[] {
  return rows(text).filter((r) => r.length >= 5).map(([, type, source, model, mac]) => ({
    type: type!, source: source!, model: model!, mac: mac!,
  }));
}

/** The persistent `<vcpu>` and `<memory>` of `dumpxml --inactive`, as libvirt writes them. */
export function parseDefinition(xml: string): { cpus?: number; memoryKiB?: number } {
  const vcpu = /<vcpu\b([^>]*)>(\d+)<\/vcpu>/.exec(xml);
  const current = vcpu ? /current=['"](\d+)['"]/.exec(vcpu[1]!) : null;
  const memory = /<memory\b[^>]*unit=['"]KiB['"][^>]*>(\d+)<\/memory>/.exec(xml);
  return {
    ...(vcpu ? { cpus: Number(current ? current[1] : vcpu[2]) } : {}),
    ...(memory ? { memoryKiB: Number(memory[1]) } : {}),
  };
}
