/**
 * What a master adds to createMaster (server.ts) to serve agents (DESIGN §9): the agent protocol
 * behind the agent port's WebSocket (agents.ts) and the run API on the API port (api-runs.ts),
 * sharing one agent hub and one run manager. `cairn master` (cli/master.ts's masterParts) and
 * the tests put a master together through here. Every master claims its agents' connections in
 * the store and serves the runs other masters hand it (owners.ts): on a shared etcd store, any
 * number of masters serve one fleet; on SQLite, the one master finds every agent its own.
 */
import type { Store } from '../../store/types.ts';
import { AgentHub } from './agents.ts';
import { apiRunRoutes, type CompileHead, type HeadGroups } from './api-runs.ts';
import type { AgentSocketHandler } from './agent-sockets.ts';
import { AgentOwners } from './owners.ts';
import type { Route } from './routes.ts';
import { RunManager, type Retention } from './runs.ts';

export interface AgentPartsOptions {
  /** Ops in flight at once on this master (`--forks`). */
  forks?: number;
  /** Compiles the pushed head revision for API runs sent without compiled runs. */
  compileHead?: CompileHead;
  /** Each target's groups in the pushed head revision, for `GET /api/v1/targets`. */
  headGroups?: HeadGroups;
  /** A target whose last run is older than this many seconds shows as stale (`--stale-after`; 24 h). */
  staleAfterSeconds?: number;
  log?: (line: string) => void;
  /**
   * The id of the master that ran before this one from the same state folder (it was killed):
   * its runs still said running are recorded interrupted at once, its agents' claims end.
   */
  previousId?: string;
  /** How many finished runs the store keeps (`--keep-runs`, `--keep-days`; default the newest 100 of each target). */
  retention?: Retention;
}

export interface AgentParts {
  routes: Route[];
  onAgentSocket: AgentSocketHandler;
  agents: AgentHub;
  runs: RunManager;
  owners: AgentOwners;
  /**
   * Before the listeners close: runs in flight are cancelled, agents told 4503 (their ops end),
   * and the runs' records and events written.
   */
  close(): Promise<void>;
}

export async function agentParts(store: Store, options: AgentPartsOptions = {}): Promise<AgentParts> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const owners = new AgentOwners(store, log);
  await owners.heartbeat();
  if (options.previousId && (await owners.retire(options.previousId))) log(`the previous master of this state folder (${options.previousId}) is gone: its runs not finished are recorded interrupted`);
  const agents = new AgentHub({ store, owners, ...(options.forks ? { forks: options.forks } : {}), log });
  const runs = new RunManager(store, agents, log, owners, options.retention);
  await runs.serve();
  return {
    routes: apiRunRoutes({ store, agents, runs, ...(options.compileHead ? { compileHead: options.compileHead } : {}), ...(options.headGroups ? { headGroups: options.headGroups } : {}), ...(options.staleAfterSeconds ? { staleAfterSeconds: options.staleAfterSeconds } : {}) }),
    onAgentSocket: agents.handle,
    agents,
    runs,
    owners,
    async close() {
      runs.cancelAll();
      await agents.close();
      await runs.settled();
      runs.stop();
      await owners.close();
    },
  };
}
