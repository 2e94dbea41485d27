/**
 * Several masters on one store (DESIGN §9): which master holds which agent's connection, and
 * whether that master is alive.
 *
 * Each master has an id of its own (made at start) and says it is alive by writing
 * `/cairn/master/masters/<id>` with an expiry, renewed every third of ALIVE_TTL_MS. An agent's
 * connection is claimed with `/cairn/master/owners/<agent>` = that id (the newest connection
 * wins: a plain put), and given up only by the master that still holds it (a transaction on the
 * value). A claim counts only while its master's record has not expired, so the claims of a
 * master that died (killed, cut off from the store) run out with it, without anyone cleaning up.
 * One heartbeat key per master, not one lease per agent: 2,000 agents cost the store one write
 * every few seconds, not 2,000 keep-alives.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Store } from '../../store/types.ts';

export const OWNER_KEYS = {
  masters: '/cairn/master/masters/',
  master: (id: string) => `/cairn/master/masters/${id}`,
  owner: (agent: string) => `/cairn/master/owners/${agent}`,
  /** Run requests for master `id` to run (several-masters.ts). */
  requests: (id: string) => `/cairn/master/run-requests/${id}/`,
  request: (id: string, run: string) => `/cairn/master/run-requests/${id}/${run}`,
  /** Runs not finished, each naming the master that runs it (or is to): found when that master dies. */
  running: '/cairn/master/running/',
  runningRun: (run: string) => `/cairn/master/running/${run}`,
  /** A run to cancel, on whichever master runs it. */
  cancels: '/cairn/master/run-cancels/',
  cancel: (run: string) => `/cairn/master/run-cancels/${run}`,
};

/** How long a master counts as alive after its last heartbeat. */
export const ALIVE_TTL_MS = 15_000;

const MASTER_ID = /^[A-Za-z0-9._-]{1,200}$/;

export interface MasterAlive {
  id: string;
  expires: number;
  host: string;
  pid: number;
}

export class AgentOwners {
  readonly id: string;
  private readonly timer: NodeJS.Timeout;
  private beating: Promise<void> = Promise.resolve();

  constructor(private readonly store: Store, private readonly log: (line: string) => void = () => undefined, private readonly ttlMs = ALIVE_TTL_MS) {
    this.id = `${hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 100)}-${process.pid}-${randomBytes(4).toString('hex')}`;
    this.timer = setInterval(() => void this.heartbeat(), Math.max(200, Math.floor(ttlMs / 3)));
    this.timer.unref();
  }

  /** Says this master is alive (at start, then every third of the TTL). */
  heartbeat(): Promise<void> {
    const record: MasterAlive = { id: this.id, expires: Date.now() + this.ttlMs, host: hostname(), pid: process.pid };
    this.beating = this.store.put(OWNER_KEYS.master(this.id), JSON.stringify(record))
      .then(() => undefined, (err: unknown) => this.log(`cannot say this master is alive in the store: ${(err as Error).message}`));
    return this.beating;
  }

  async claim(agent: string): Promise<void> {
    await this.store.put(OWNER_KEYS.owner(agent), this.id);
  }

  /** Gives up agent's claim, unless another master claimed it since. */
  async release(agent: string): Promise<void> {
    await this.store.txn([{ key: OWNER_KEYS.owner(agent), target: 'value', op: '=', value: this.id }], [{ delete: OWNER_KEYS.owner(agent) }]);
  }

  /** How often the master checks for runs of masters that died (a third of the TTL). */
  get checkEveryMs(): number {
    return Math.max(200, Math.floor(this.ttlMs / 3));
  }

  /**
   * A previous master of this state folder (this master started again after it was killed): its
   * record is removed, so its claims and runs end now rather than when the record expires. Not
   * when that process is still alive on this host (two masters given one state folder).
   */
  async retire(id: string): Promise<boolean> {
    if (id === this.id || !MASTER_ID.test(id)) return false;
    const kv = await this.store.get(OWNER_KEYS.master(id));
    if (kv) {
      try {
        const record = JSON.parse(kv.value.toString('utf8')) as MasterAlive;
        if (record.host === hostname() && record.pid !== process.pid && processAlive(record.pid) && record.expires > Date.now()) return false;
      } catch {
        // Not a record this code wrote: it goes.
      }
      await this.store.txn([{ key: kv.key, target: 'modRevision', op: '=', value: kv.modRevision }], [{ delete: kv.key }]);
    }
    return true;
  }

  /** Whether master `id` said it is alive within the TTL. */
  async alive(id: string): Promise<boolean> {
    if (id === this.id) return true;
    if (!MASTER_ID.test(id)) return false;
    const kv = await this.store.get(OWNER_KEYS.master(id));
    if (!kv) return false;
    try {
      return (JSON.parse(kv.value.toString('utf8')) as MasterAlive).expires > Date.now();
    } catch {
      return false;
    }
  }

  /** The live master holding agent's connection, if any (this one's id included). */
  async ownerOf(agent: string): Promise<string | undefined> {
    const kv = await this.store.get(OWNER_KEYS.owner(agent));
    const id = kv?.value.toString('utf8');
    return id && (await this.alive(id)) ? id : undefined;
  }

  /** Stops the heartbeat and removes this master's record (its claims end with it). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.beating;
    await this.store.delete(OWNER_KEYS.master(this.id)).catch(() => undefined);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
