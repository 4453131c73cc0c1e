/** The `ane-train` command (bin/ane-train.mjs loads the build of this file, dist/cli.js). */
import { runCli } from './run';

// `ane-train plan | head`: a reader that stops early is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

void runCli(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
