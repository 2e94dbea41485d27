/**
 * A master that serves agents (DESIGN §9): createMaster's listeners and security (server.ts)
 * with the agent protocol behind the agent port's WebSocket (agents.ts) and the run API on the
 * API port (api-runs.ts). This is the one place they are put together: `cairn master` and the
 * tests start a master through here.
 */
import { AgentHub } from './agents.ts';
import { apiRunRoutes, type CompileHead } from './api-runs.ts';
import { RunManager } from './runs.ts';
import { createMaster, type Master, type MasterOptions } from './server.ts';

export interface FleetMasterOptions extends Omit<MasterOptions, 'onAgentSocket'> {
  /** Ops in flight at once on this master (`--forks`). */
  forks?: number;
  /** Compiles the pushed head revision for API runs sent without compiled runs. */
  compileHead?: CompileHead;
}

export interface FleetMaster extends Master {
  agents: AgentHub;
  runs: RunManager;
}

export async function createFleetMaster(options: FleetMasterOptions): Promise<FleetMaster> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const agents = new AgentHub({ store: options.store, ...(options.forks ? { forks: options.forks } : {}), log });
  const runs = new RunManager(options.store, agents, log);
  const { forks, compileHead, ...rest } = options;
  void forks;
  const master = await createMaster({
    ...rest,
    log,
    routes: [...(options.routes ?? []), ...apiRunRoutes({ store: options.store, agents, runs, ...(compileHead ? { compileHead } : {}) })],
    onAgentSocket: agents.handle,
  });
  const closeListeners = master.close.bind(master);
  let closing: Promise<void> | undefined;
  return Object.assign(master, {
    agents,
    runs,
    close: () => (closing ??= (async () => {
      // Runs in flight are cancelled, agents told 4503 (their ops end), the runs recorded, then the listeners close.
      runs.cancelAll();
      await agents.close();
      await runs.settled();
      await closeListeners();
    })()),
  });
}
