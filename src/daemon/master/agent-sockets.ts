/**
 * The seam between the master's agent listener and whatever speaks the agent protocol over the
 * WebSocket: the listener authenticates `GET /v1/agent` from the client certificate, upgrades it,
 * registers the socket under the certificate's serial (so a revocation can close it) and hands it,
 * with the identity, to the handler given to createMaster.
 */
import type { WebSocket } from 'ws';
import type { AgentIdentity } from './routes.ts';
import { CloseCode } from '../protocol.ts';

export type AgentSocketHandler = (socket: WebSocket, identity: AgentIdentity) => void;

/** Used when createMaster is given no handler: nothing can serve the socket yet. */
export const refuseAgentSocket: AgentSocketHandler = (socket) => {
  socket.close(CloseCode.shuttingDown, 'this master serves no agent protocol');
};

/** Live agent sockets by certificate serial. */
export class AgentSockets {
  private readonly bySerial = new Map<string, Set<WebSocket>>();

  add(serial: string, socket: WebSocket): void {
    let set = this.bySerial.get(serial);
    if (!set) this.bySerial.set(serial, (set = new Set()));
    set.add(socket);
    socket.once('close', () => {
      set.delete(socket);
      if (set.size === 0 && this.bySerial.get(serial) === set) this.bySerial.delete(serial);
    });
  }

  /** Closes every socket of `serial` with `code`. Returns how many were open. */
  close(serial: string, code: number, reason: string): number {
    const set = this.bySerial.get(serial);
    if (!set) return 0;
    for (const socket of set) closeOrEnd(socket, code, reason);
    return set.size;
  }

  closeAll(code: number, reason: string): void {
    for (const set of this.bySerial.values()) for (const socket of set) closeOrEnd(socket, code, reason);
  }

  get size(): number {
    let n = 0;
    for (const set of this.bySerial.values()) n += set.size;
    return n;
  }
}

/** Sends the close frame, and ends the connection if the peer does not answer it soon. */
function closeOrEnd(socket: WebSocket, code: number, reason: string): void {
  socket.close(code, reason);
  const timer = setTimeout(() => socket.terminate(), 2000);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
