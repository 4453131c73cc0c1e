/** Where the CLI writes and resolves paths: the process by default, a capture in tests. */
import { resolve } from 'node:path';

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** The directory relative paths are resolved against. */
  readonly cwd: string;
  resolve(path: string): string;
  /** stdout is a terminal: progress is a live bar (else one plain line per logged step). */
  readonly stdoutIsTTY?: boolean;
  /** The terminal stream the live progress bar draws on (when stdoutIsTTY). */
  readonly stdoutStream?: NodeJS.WritableStream;
  /** Calls `handler` on each Ctrl-C (SIGINT) until the returned function is called. */
  onInterrupt?(handler: () => void): () => void;
  /** Ends the process at once (a second Ctrl-C). */
  exitNow?(code: number): void;
}

// citty colours its usage text unless NO_COLOR is set; a pipe or a file gets plain text.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching ANSI colour codes
const ANSI = /\u001b\[[0-9;]*m/g;

function writer(stream: NodeJS.WriteStream): (text: string) => void {
  return (text) => {
    stream.write(stream.isTTY ? text : text.replace(ANSI, ''));
  };
}

export function processIo(): CliIo {
  const cwd = process.cwd();
  return {
    stdout: writer(process.stdout),
    stderr: writer(process.stderr),
    cwd,
    resolve: (path) => resolve(cwd, path),
    stdoutIsTTY: process.stdout.isTTY === true,
    stdoutStream: process.stdout,
    onInterrupt(handler) {
      process.on('SIGINT', handler);
      return () => {
        process.off('SIGINT', handler);
      };
    },
    exitNow(code) {
      process.exit(code);
    },
  };
}
