import { main } from './main.ts';
import { outputSettled } from './output.ts';

void main(process.argv.slice(2)).then((code) => {
  // Every command awaits all it starts, so it is over here. When its output went straight to the
  // descriptor (cli/output.ts), exiting now skips Node's orderly teardown, which frees the heap
  // page by page and waits on V8's background tasks: several milliseconds of a converged run.
  // Output left to Node's streams may still be on its way: then Node exits in its own time.
  if (outputSettled()) process.exit(code);
  process.exitCode = code;
});
