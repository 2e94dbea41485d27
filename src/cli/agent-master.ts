/**
 * `cairn agent --master URL [--dir D]`: this machine as an agent of a master (DESIGN §9), after
 * `cairn agent enrol` left its key, certificate and the master's CA in D. The name it is known
 * by is its certificate's. The certificate is renewed (a new key, over mutual TLS) when 30 days
 * or less are left: checked before each connection and once a day, the new one used from the
 * next connection on (a renewal while connected reconnects at once, so a long-lived connection
 * never outlives its certificate).
 */
import { resolve } from 'node:path';
import { AgentLink, AgentStopped } from '../daemon/agent-link.ts';
import { EnrolmentError, loadAgentCredentials, renewalDue, renewCertificate, type AgentCredentials } from '../daemon/enrolment/client.ts';
import { writeErr, writeOut } from './output.ts';

export interface AgentMasterOptions {
  /** The master's agent port; default: the one enrolled with. */
  master?: string;
  /** The enrolment folder. */
  dir: string;
  workDir: string;
}

const DAY_MS = 86_400_000;

export async function agentOverMaster(options: AgentMasterOptions): Promise<number> {
  const dir = resolve(options.dir);
  const log = (line: string) => writeOut(`${new Date().toISOString()} ${line}\n`);
  let credentials: AgentCredentials;
  try {
    credentials = loadAgentCredentials(dir);
  } catch (err) {
    if (!(err instanceof EnrolmentError)) throw err;
    writeErr(`cairn: ${err.message}\n`);
    return err.exitCode;
  }
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);

  let link: AgentLink | undefined;
  /** Renews when due; true when a new certificate was taken. A failure is logged and tried again later. */
  const renewIfDue = async (): Promise<boolean> => {
    if (!renewalDue(credentials)) return false;
    try {
      credentials = await renewCertificate(dir, options.master);
      log(`renewed the certificate of ${credentials.name}: serial ${credentials.serial}, valid until ${credentials.not_after}`);
      return true;
    } catch (err) {
      if (!(err instanceof EnrolmentError)) throw err;
      log(`the certificate (valid until ${credentials.not_after}) is due for renewal, which failed: ${err.message}`);
      return false;
    }
  };
  const daily = setInterval(() => {
    void renewIfDue().then((renewed) => {
      if (renewed) link?.reconnect('certificate renewed');
    });
  }, DAY_MS);
  daily.unref();
  try {
    link = new AgentLink({
      master: options.master ?? credentials.master,
      tls: () => ({ cert: credentials.cert, key: credentials.key, ca: credentials.ca }),
      workDir: resolve(options.workDir),
      signal: controller.signal,
      log,
      beforeConnect: async () => {
        await renewIfDue();
      },
    });
    log(`cairn agent ${credentials.name}: connecting to ${options.master ?? credentials.master}`);
    return await link.run();
  } catch (err) {
    if (!(err instanceof AgentStopped)) throw err;
    writeErr(`cairn: ${err.message}\n`);
    return err.exitCode;
  } finally {
    clearInterval(daily);
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
