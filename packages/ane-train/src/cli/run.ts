/**
 * The `ane-train` command line: subcommands, help, and what a failure looks like. A user's mistake
 * never prints a stack trace and exits 2: a bad command line prints one `error: …` line pointing at
 * the command's --help; a bad file or config (ConfigError, DataError, CheckpointError, …) prints one `error: …`
 * line naming the file and field. Anything else is a bug: the stack and a line asking for a report,
 * exit 1.
 */
import { type CommandDef, defineCommand, renderUsage } from 'citty';
import { version } from '../version';
import { UsageError } from './args';
import { benchCommandDef, runBench } from './bench-command';
import { exportCommandDef, runExport } from './export-command';
import { gradsCommandDef, runGrads } from './grads-command';
import { importCommandDef, runImport } from './import-command';
import { type CliIo, processIo } from './io';
import { planCommand, runPlan } from './plan-command';
import { runSample, sampleCommandDef } from './sample-command';
import { runTrain, trainCommandDef } from './train-command';

// biome-ignore lint/suspicious/noExplicitAny: citty's CommandDef is invariant in its flags; usage rendering takes any command
type AnyCommand = CommandDef<any>;

const SUBCOMMANDS: Record<
  string,
  { def: AnyCommand; run(args: readonly string[], io: CliIo): Promise<number> }
> = {
  train: { def: trainCommandDef, run: runTrain },
  sample: { def: sampleCommandDef, run: runSample },
  plan: { def: planCommand, run: runPlan },
  grads: { def: gradsCommandDef, run: runGrads },
  import: { def: importCommandDef, run: runImport },
  export: { def: exportCommandDef, run: runExport },
  bench: { def: benchCommandDef, run: runBench },
};

export const mainCommand = defineCommand({
  meta: { name: 'ane-train', version, description: 'train Llama-family models on the Apple Neural Engine' },
  subCommands: Object.fromEntries(Object.entries(SUBCOMMANDS).map(([name, c]) => [name, c.def])),
});

/** Errors a user causes or meets (bad files, configs, data, devices): one line, no stack. By name: ESM and CJS copies of a package are different classes. */
const USER_ERRORS = new Set([
  'ConfigError',
  'DataError',
  'CheckpointError',
  'TrainError',
  'ShapeError',
  'ConstraintError',
  'DeviceUnavailableError',
  'CompileError',
  'CompileBudgetError',
  'DeviceOptionsError',
  'OptimizerConfigError',
]);

/** What to do about a file-system error a user meets (a permission, a full disk), by its code. */
const FILE_SYSTEM_FIXES: Record<string, string> = {
  EACCES: "permission denied: check its permissions (and its directory's), or use a path you may use",
  EPERM: 'operation not permitted: check its permissions, or use a path you may use',
  EROFS: 'the file system is read-only: use a path on a writable disk',
  ENOSPC: 'no space left on the device: free some space or write somewhere else',
  EDQUOT: 'the disk quota is used up: free some space or write somewhere else',
  ENOENT: 'no such file or directory: check the path',
  ENOTDIR: 'a part of the path is a file, not a directory: check the path',
  EISDIR: 'it is a directory: give a file',
  EEXIST: 'it already exists: choose another path',
  ENAMETOOLONG: 'the name is too long: use a shorter path',
  ELOOP: 'too many symbolic links: check the path',
  EMFILE: 'too many open files: raise the limit (ulimit -n) or close other programs',
  ENFILE: 'too many open files on the system: close other programs',
  EIO: 'an input/output error: check the disk',
};

/**
 * One line for a Node file-system error that names a path and whose cause the user can fix (a
 * permission, a full or read-only disk), else undefined (a bug).
 */
export function fileSystemErrorLine(error: unknown): string | undefined {
  const e = error as NodeJS.ErrnoException | undefined;
  if (!(e instanceof Error) || typeof e.code !== 'string' || typeof e.path !== 'string') return undefined;
  const fix = FILE_SYSTEM_FIXES[e.code];
  if (fix === undefined) return undefined;
  const what = e.syscall !== undefined ? `${e.syscall} ${e.path}` : e.path;
  return `error: cannot ${what} (${e.code}): ${fix}`;
}

/** The exit code of a mistake a user can fix (a command line, a file, a config, data). */
export const USER_ERROR_EXIT = 2;

function isHelp(arg: string): boolean {
  return arg === '--help' || arg === '-h';
}

/** Runs the CLI on `argv` (without node and the script) and returns the exit code. */
export async function runCli(argv: readonly string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...given] = argv;
  // `pnpm train -- --steps 5` hands the `--` on: flags after a leading `--` are still flags.
  const rest = given[0] === '--' ? given.slice(1) : given;
  const sub = name !== undefined ? SUBCOMMANDS[name] : undefined;
  const usageOf = async (command: AnyCommand | undefined) =>
    command === undefined ? renderUsage(mainCommand) : renderUsage(command, mainCommand);
  try {
    if (name === undefined || isHelp(name)) {
      const usage = await usageOf(undefined);
      if (name === undefined) {
        io.stderr(`${usage}\n`);
        return 2;
      }
      io.stdout(`${usage}\n`);
      return 0;
    }
    if (name === '--version' || name === '-v') {
      io.stdout(`${version}\n`);
      return 0;
    }
    if (name === 'help') {
      const target = rest[0] !== undefined ? SUBCOMMANDS[rest[0]] : undefined;
      if (rest[0] !== undefined && target === undefined) throw new UsageError(`unknown command '${rest[0]}'`);
      io.stdout(`${await usageOf(target?.def)}\n`);
      return 0;
    }
    if (sub === undefined)
      throw new UsageError(
        `unknown command '${name}': the commands are ${Object.keys(SUBCOMMANDS).join(', ')}`,
      );
    if (rest.some(isHelp)) {
      io.stdout(`${await usageOf(sub.def)}\n`);
      return 0;
    }
    return await sub.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      // One line (the usage is 15-35 lines: in a terminal it would push the error off the screen).
      const help =
        sub !== undefined
          ? `ane-train ${name} --help lists its options`
          : 'ane-train --help lists the commands';
      io.stderr(`error: ${error.message} (${help})\n`);
      return USER_ERROR_EXIT;
    }
    const named = error as Error;
    if (named instanceof Error && USER_ERRORS.has(named.name)) {
      // One line: a message with newlines in it is joined.
      // ane-bridge's device error names the library call; on the command line the fix is a flag.
      const cliFix =
        named.name === 'DeviceUnavailableError'
          ? ' (on the ane-train command line: --backend sim, or --backend auto to pick what this machine has)'
          : '';
      io.stderr(`error: ${named.name}: ${named.message.replace(/\s*\n\s*/g, ' ')}${cliFix}\n`);
      return USER_ERROR_EXIT;
    }
    const fileSystem = fileSystemErrorLine(error);
    if (fileSystem !== undefined) {
      io.stderr(`${fileSystem}\n`);
      return USER_ERROR_EXIT;
    }
    io.stderr(
      `ane-train: internal error (a bug: please report it with the command line):\n${named?.stack ?? String(error)}\n` +
        'Please report this at https://github.com/ane-sdk/ane-sdk/issues with the command line and the output above.\n',
    );
    return 1;
  }
}
