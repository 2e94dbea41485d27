import { main } from './main.ts';

// `cairn schema | head` closes the pipe early; that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});
void main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
