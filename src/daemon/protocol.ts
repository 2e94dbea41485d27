/**
 * The agent protocol (DESIGN §9): what a `cairn agent --master` and a master say to each other
 * over `wss://master:8641/v1/agent` (the version is in the path, and in every frame). Each
 * WebSocket message is one JSON object `{v: 1, type, id?, re?, …}` checked here against a zod
 * schema, on both sides, before anything reads it: a frame that is not JSON, not an object, of
 * a type the reader does not take, or with a field out of shape closes the socket with 4400; a
 * frame of another protocol version closes it with 4426.
 *
 * A run travels as data: `op.run` is the compiled run as the graph codec writes it (its graph
 * included, graph/codec.ts), which the agent decodes and hands to its engine. No site file,
 * template or TypeScript ever crosses: those run only where the site is compiled.
 */
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

/** The WebSocket path an agent connects to. */
export const AGENT_PATH = `/v${PROTOCOL_VERSION}/agent`;

/** Close codes (4000–4999 are the application's). */
export const CloseCode = {
  /** A frame that is not a valid message, or of a type this side does not take. */
  badMessage: 4400,
  /** A certificate revoked (or never valid). */
  unauthorised: 4401,
  /** A newer connection of the same agent name took over. */
  replaced: 4409,
  /** A frame of a protocol version this side does not speak. */
  unsupportedVersion: 4426,
  /** The master is shutting down: reconnect (to it or another master). */
  shuttingDown: 4503,
} as const;

/** How often the master pings each agent, in seconds (the welcome says so). */
export const HEARTBEAT_S = 30;

const id = z.string().min(1).max(128);
const count = z.number().int().min(0);
const facts = z.record(z.string(), z.unknown());

/** One node's result, as the engine reports it (engine.ts NodeResult). */
export const nodeResultSchema = z.strictObject({
  ref: z.string(),
  id: z.string(),
  state: z.string(),
  invocation: count,
  status: z.enum(['unchanged', 'changed', 'failed', 'skipped', 'would-change', 'unknown']),
  action: z.enum(['none', 'create', 'update', 'reload', 'rebuild', 'destroy', 'refresh', 'run']),
  reason: z.string().optional(),
  changes: z.array(z.string()).optional(),
  items: z.array(z.string()).optional(),
  diff: z.string().optional(),
  error: z.string().optional(),
  ms: z.number().min(0),
});

/**
 * One target's report (engine.ts TargetReport). In a `result` frame its `nodes` are left out when
 * every node result went before it in `event(s)` frames (they are the report's nodes, in that
 * order): a 742-node run's results then cross, and are checked, once rather than twice.
 */
export const targetReportSchema = z.strictObject({
  name: z.string(),
  status: z.enum(['ok', 'failed', 'unreachable', 'locked', 'skipped']),
  counts: z.strictObject({ changed: count, unchanged: count, failed: count, skipped: count }),
  nodes: z.array(nodeResultSchema).optional(),
  error: z.string().optional(),
  reason: z.string().optional(),
  round_trips: count.optional(),
});

/** What an ad-hoc command (`op: run`) ended with; its output also streamed as `log` frames. */
export const commandReportSchema = z.strictObject({
  exit_code: z.number().int().nullable(),
  stdout: z.string(),
  stderr: z.string(),
  timed_out: z.boolean().optional(),
});

/** How a plan or apply runs (the CLI's flags that reach the engine). */
export const opOptionsSchema = z.strictObject({
  diff: z.boolean().optional(),
  fail_fast: z.boolean().optional(),
  /** `--tags` / `--skip-tags`. */
  tags: z.strictObject({ only: z.array(z.string()).optional(), skip: z.array(z.string()).optional() }).optional(),
  /** `--lock-wait`, in seconds. */
  lock_wait_s: z.number().min(0).optional(),
  /** `cairn run --become`: the command runs through `sudo -n` unless the agent is root. */
  become: z.boolean().optional(),
});

const v = z.literal(PROTOCOL_VERSION);

/** The most node results one `events` frame carries. */
export const MAX_EVENTS_PER_FRAME = 1000;

// Agent → master.
export const helloSchema = z.strictObject({ v, type: z.literal('hello'), id: id.optional(), agent_version: z.string().max(64), facts, boot_id: z.string().max(64) });
export const eventSchema = z.strictObject({ v, type: z.literal('event'), re: id, seq: count, node: nodeResultSchema });
/**
 * Node results one after another, the first with `seq` and each next one with the next seq: an
 * agent sends the results of one moment of its run in one frame (a 742-node no-op takes a few
 * frames, not 742). A master reads `event` too, as an older agent sends it.
 */
export const eventsSchema = z.strictObject({ v, type: z.literal('events'), re: id, seq: count, nodes: z.array(nodeResultSchema).min(1).max(MAX_EVENTS_PER_FRAME) });
/**
 * A line of an op's output: a command's `stdout`/`stderr` (op run), a provider's `log` line
 * (with the node's `ref`), or a `notice` about the run itself (waiting for the run lock).
 */
export const logSchema = z.strictObject({ v, type: z.literal('log'), re: id, seq: count, stream: z.enum(['stdout', 'stderr', 'log', 'notice']), data: z.string(), ref: z.string().optional() });
export const resultSchema = z.strictObject({
  v, type: z.literal('result'), re: id, ok: z.boolean(),
  report: z.union([targetReportSchema, commandReportSchema]).optional(),
  facts: facts.optional(),
  error: z.string().optional(),
});

// Master → agent.
export const welcomeSchema = z.strictObject({ v, type: z.literal('welcome'), name: z.string().min(1), heartbeat_s: z.number().int().positive() });
export const opSchema = z.strictObject({
  v, type: z.literal('op'), id,
  op: z.enum(['facts', 'plan', 'apply', 'run']),
  /** The compiled run, as graph/codec.ts writes it (two JSON lines: the graph and header, then the invocations, which encodeForEngine leaves empty). */
  run: z.string().optional(),
  options: opOptionsSchema,
  argv: z.array(z.string()).min(1).optional(),
  /** The pushed revision the run was compiled from, when it was (reported back, not used to fetch anything). */
  revision: z.string().max(128).optional(),
}).refine((op) => (op.op === 'plan' || op.op === 'apply' ? op.run !== undefined : true), { message: 'a plan or apply op carries the compiled run', path: ['run'] })
  .refine((op) => (op.op === 'run' ? op.argv !== undefined : true), { message: 'a run op carries argv', path: ['argv'] });
export const cancelSchema = z.strictObject({ v, type: z.literal('cancel'), re: id });

export type Hello = z.infer<typeof helloSchema>;
export type EventFrame = z.infer<typeof eventSchema>;
export type EventsFrame = z.infer<typeof eventsSchema>;
export type LogFrame = z.infer<typeof logSchema>;
export type ResultFrame = z.infer<typeof resultSchema>;
export type Welcome = z.infer<typeof welcomeSchema>;
export type OpFrame = z.infer<typeof opSchema>;
export type CancelFrame = z.infer<typeof cancelSchema>;
export type OpOptions = z.infer<typeof opOptionsSchema>;
export type CommandReport = z.infer<typeof commandReportSchema>;

export type AgentFrame = Hello | EventFrame | EventsFrame | LogFrame | ResultFrame;
export type MasterFrame = Welcome | OpFrame | CancelFrame;

const AGENT_FRAMES = { hello: helloSchema, event: eventSchema, events: eventsSchema, log: logSchema, result: resultSchema };
const MASTER_FRAMES = { welcome: welcomeSchema, op: opSchema, cancel: cancelSchema };

/** A frame refused: the code to close with and why (short: a close reason holds 123 bytes). */
export interface Refusal {
  code: number;
  reason: string;
}

/** The longest frame either side reads: a compiled run of some thousands of nodes fits many times. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

function parseWith<F>(table: Record<string, z.ZodType>, data: string, from: string): { frame: F } | { refused: Refusal } {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return { refused: { code: CloseCode.badMessage, reason: 'not JSON' } };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { refused: { code: CloseCode.badMessage, reason: 'not a JSON object' } };
  const frame = value as Record<string, unknown>;
  if (frame.v !== PROTOCOL_VERSION) {
    return { refused: { code: CloseCode.unsupportedVersion, reason: `protocol version ${JSON.stringify(frame.v) ?? 'missing'} is not supported (this side speaks ${PROTOCOL_VERSION})`.slice(0, 120) } };
  }
  const type = frame.type;
  if (typeof type !== 'string' || !Object.hasOwn(table, type)) {
    return { refused: { code: CloseCode.badMessage, reason: `unknown message type ${JSON.stringify(type) ?? 'missing'} from ${from}`.slice(0, 120) } };
  }
  const parsed = table[type]!.safeParse(frame);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { refused: { code: CloseCode.badMessage, reason: `bad ${type}: ${issue.path.join('.') || '(frame)'}: ${issue.message}`.slice(0, 120) } };
  }
  return { frame: parsed.data as F };
}

/** A frame an agent sent, as the master reads it. */
export function parseAgentFrame(data: string): { frame: AgentFrame } | { refused: Refusal } {
  return parseWith<AgentFrame>(AGENT_FRAMES, data, 'an agent');
}

/** A frame the master sent, as an agent reads it. */
export function parseMasterFrame(data: string): { frame: MasterFrame } | { refused: Refusal } {
  return parseWith<MasterFrame>(MASTER_FRAMES, data, 'the master');
}

/** A frame as a side builds it: the version is filled in when it is written. */
export type Outgoing<F> = F extends unknown ? Omit<F, 'v'> : never;

/** The wire text of a frame (the version filled in). */
export function frameText(frame: Outgoing<AgentFrame> | Outgoing<MasterFrame>): string {
  return JSON.stringify({ v: PROTOCOL_VERSION, ...frame });
}

/** WebSocket message data (text or binary) as a string, or undefined past MAX_FRAME_BYTES. */
export function messageText(data: Buffer | ArrayBuffer | Buffer[]): string | undefined {
  const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  return bytes.length > MAX_FRAME_BYTES ? undefined : bytes.toString('utf8');
}
