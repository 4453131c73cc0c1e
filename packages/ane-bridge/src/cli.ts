import { parseArgs } from 'node:util';
import { CHIP_FAMILIES } from 'ane-ir/mil';
import { version } from '../package.json';
import { formatBench, runBench } from './ane/bench';
import {
  aneProbeVerdict,
  defaultProbeEnvironment,
  describeVerdict,
  PROBE_CHILD_COMMAND,
  runProbeInThisProcess,
} from './ane/probe';
import { capabilities } from './capabilities';
import { conformanceCaseDirs, formatConformanceTable } from './cli/conformance';
import { formatDoctorReport } from './cli/doctor';
import { runConformance } from './conformance/run';
import { type ChipFamily, openDevice } from './device/device';
import { didYouMean } from './did-you-mean';
import { DeviceUnavailableError } from './errors';
import { nativeAddon } from './native/loader';

const BACKENDS = ['auto', 'sim', 'ane'] as const;

interface OptionSpec {
  type: 'string' | 'boolean';
  /** The value's name in help, e.g. 'N'. */
  valueName?: string;
  /** The values a string option accepts (checked, with a did-you-mean). */
  choices?: readonly string[];
  default?: string | boolean;
  help: string;
}

type Values = Record<string, string | boolean | undefined>;

interface Command {
  name: string;
  /** Arguments after the name in the synopsis (e.g. '[dirs...]'). */
  operands?: string;
  summary: string;
  /** More lines for `ane <command> --help`. */
  details?: string;
  options: Record<string, OptionSpec>;
  run(values: Values, positionals: string[]): number | Promise<number>;
}

const JSON_OPTION: OptionSpec = { type: 'boolean', default: false, help: 'print the result as JSON' };
const BACKEND_OPTION: OptionSpec = {
  type: 'string',
  valueName: BACKENDS.join('|'),
  choices: BACKENDS,
  default: 'auto',
  help: "the device: 'auto' (the Neural Engine where available, else the simulator), 'sim' or 'ane'",
};
const CHIP_OPTION: OptionSpec = {
  type: 'string',
  valueName: `${CHIP_FAMILIES[0]}..${CHIP_FAMILIES.at(-1)}`,
  choices: CHIP_FAMILIES,
  help: "the chip family whose ANE rules apply (default: the machine's own on the ANE, M4 in the simulator)",
};

const COMMANDS: readonly Command[] = [
  {
    name: 'doctor',
    summary:
      'what this machine supports (native kernels, SIMD, Neural Engine) and how to fix what is missing',
    options: { json: { ...JSON_OPTION, help: 'print the capabilities object as JSON' } },
    run(values) {
      const report = capabilities();
      process.stdout.write(
        values.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report, version),
      );
      return 0;
    },
  },
  {
    name: 'conformance',
    operands: '[dirs...]',
    summary: 'run conformance cases (default: the corpus shipped with ane-bridge); exits 0 only if all pass',
    details:
      'Each dir is a case (it holds case.json) or a directory of cases. A case the compiler refuses on a chip\n' +
      'the case says it does not compile on reports "refused (expected)" and does not fail the run.\n' +
      'Exit code: 0 when every case passes (or is refused as expected), 1 when one fails, 2 on a usage error.',
    options: { backend: BACKEND_OPTION, chip: CHIP_OPTION, json: JSON_OPTION },
    run(values, positionals) {
      const caseDirs = conformanceCaseDirs(positionals);
      using device = openCliDevice(values);
      const results = runConformance(caseDirs, device);
      const count = (outcome: string) => results.filter((r) => r.outcome === outcome).length;
      if (values.json) {
        const report = {
          backend: device.backend,
          chip: device.chip,
          passed: count('pass'),
          refusedAsExpected: count('refused-expected'),
          failed: count('fail'),
          cases: results,
        };
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        process.stdout.write(formatConformanceTable(results, device));
      }
      return count('fail') === 0 ? 0 : 1;
    },
  },
  {
    name: 'bench',
    summary: 'time a Stories15M transformer layer forward on a device: compile time, run time, GFLOP/s',
    options: {
      backend: BACKEND_OPTION,
      chip: CHIP_OPTION,
      iterations: { type: 'string', valueName: 'N', default: '10', help: 'timed runs (default 10)' },
      json: JSON_OPTION,
    },
    async run(values) {
      const iterations = Number(values.iterations);
      if (!Number.isInteger(iterations) || iterations < 1) {
        throw new UsageError(`--iterations must be a whole number ≥ 1, got '${values.iterations}'`);
      }
      using device = openCliDevice(values);
      const result = await runBench(device, { iterations });
      process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : formatBench(result));
      return 0;
    },
  },
  {
    name: 'probe',
    summary: 'run the Neural Engine probe again (a one-op program in a child process) and cache its verdict',
    options: { json: JSON_OPTION },
    run(values) {
      const native = nativeAddon();
      if (process.platform !== 'darwin' || process.arch !== 'arm64' || native.implementation !== 'native') {
        const reason = capabilities().ane.reason;
        process.stdout.write(
          values.json
            ? `${JSON.stringify({ result: 'skipped', detail: reason }, null, 2)}\n`
            : `ane probe: not run: ${reason}\n`,
        );
        return 0;
      }
      const verdict = aneProbeVerdict(defaultProbeEnvironment(native.path), { force: true });
      process.stdout.write(
        values.json ? `${JSON.stringify(verdict, null, 2)}\n` : `ane probe: ${describeVerdict(verdict)}\n`,
      );
      return verdict.result === 'pass' ? 0 : 1;
    },
  },
];

const COMMAND_NAMES = [...COMMANDS.map((c) => c.name), 'help'];

function optionSynopsis(name: string, spec: OptionSpec): string {
  return spec.type === 'boolean' ? `--${name}` : `--${name} ${spec.valueName ?? 'VALUE'}`;
}

function synopsis(command: Command): string {
  const parts = [command.name];
  if (command.operands) parts.push(command.operands);
  for (const [name, spec] of Object.entries(command.options)) parts.push(`[${optionSynopsis(name, spec)}]`);
  return parts.join(' ');
}

const USAGE = [
  'Usage: ane <command> [options]',
  '',
  'Commands:',
  ...COMMANDS.flatMap((c) => [`  ${synopsis(c)}`, `      ${c.summary}`]),
  '',
  'Options:',
  "  -h, --help         show this help (ane <command> --help: that command's options)",
  '  -v, --version      print the ane-bridge version',
  '',
].join('\n');

function commandHelp(command: Command): string {
  const options = Object.entries(command.options).map(([name, spec]) => [
    optionSynopsis(name, spec),
    spec.help,
  ]);
  options.push(['-h, --help', 'show this help']);
  const width = Math.max(...options.map(([left]) => left!.length));
  return [
    `Usage: ane ${synopsis(command)}`,
    '',
    `${command.summary[0]!.toUpperCase()}${command.summary.slice(1)}.`,
    ...(command.details ? ['', command.details] : []),
    '',
    'Options:',
    ...options.map(([left, right]) => `  ${left!.padEnd(width)}  ${right}`),
    '',
  ].join('\n');
}

/** A mistake on the command line: printed as one line, exit code 2. */
class UsageError extends Error {}

/**
 * The command's options and operands. Unknown options, missing values and unexpected operands are
 * UsageErrors of one line with a did-you-mean (never Node's parser text).
 */
function parseCommandArgs(
  command: Command,
  args: string[],
): { values: Values; positionals: string[]; help: boolean } {
  const options = Object.fromEntries(
    Object.entries(command.options).map(([name, spec]) => [name, { type: spec.type }]),
  );
  const { tokens } = parseArgs({
    args,
    options: { ...options, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: false,
    tokens: true,
  });
  const help = `see 'ane ${command.name} --help'`;
  const values: Values = {};
  const positionals: string[] = [];
  if (tokens.some((t) => t.kind === 'option' && t.name === 'help'))
    return { values, positionals, help: true };
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positionals.push(token.value);
      continue;
    }
    if (token.kind !== 'option') continue;
    const spec = command.options[token.name];
    if (!spec) {
      const known = Object.keys(command.options).map((n) => `--${n}`);
      const given = token.rawName.startsWith('--') ? token.rawName : `--${token.name}`;
      throw new UsageError(
        `unknown option '${token.rawName}' for 'ane ${command.name}'${didYouMean(given, known)} (${help})`,
      );
    }
    if (spec.type === 'boolean') {
      if (token.inlineValue) throw new UsageError(`option '--${token.name}' takes no value (${help})`);
      values[token.name] = true;
      continue;
    }
    if (token.value === undefined) {
      const choices = spec.choices ? `: ${spec.choices.join(', ')}` : '';
      throw new UsageError(`option '--${token.name}' needs a value${choices} (${help})`);
    }
    if (spec.choices && !spec.choices.includes(token.value)) {
      throw new UsageError(
        `--${token.name} must be one of ${spec.choices.join(', ')}, got '${token.value}'${didYouMean(token.value, spec.choices)}`,
      );
    }
    values[token.name] = token.value;
  }
  for (const [name, spec] of Object.entries(command.options)) {
    if (values[name] === undefined && spec.default !== undefined) values[name] = spec.default;
  }
  if (positionals.length > 0 && !command.operands) {
    throw new UsageError(`'ane ${command.name}' takes no arguments, got '${positionals[0]}' (${help})`);
  }
  return { values, positionals, help: false };
}

/** The device the options name. An unavailable backend is explained in CLI terms (see `main`). */
function openCliDevice(values: Values) {
  const chip = values.chip as ChipFamily | undefined;
  return openDevice({
    backend: values.backend as (typeof BACKENDS)[number],
    ...(chip ? { chip } : {}),
  });
}

/** In the probe's child process: run the one-op program and print one JSON line. */
function probeChild(): number {
  const native = nativeAddon();
  const report =
    native.addon === null
      ? { result: 'fail', detail: `the native addon is not loaded: ${native.reason}` }
      : runProbeInThisProcess(native.addon.ane);
  process.stdout.write(`${JSON.stringify(report)}\n`);
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined || first === '-h' || first === '--help') {
    process.stdout.write(USAGE);
    return first === undefined ? 1 : 0;
  }
  if (first === '-v' || first === '--version') {
    process.stdout.write(`${version}\n`);
    return 0;
  }
  if (first === PROBE_CHILD_COMMAND) return probeChild();
  if (first === 'help') {
    const topic = rest[0];
    if (topic === undefined) {
      process.stdout.write(USAGE);
      return 0;
    }
    const command = COMMANDS.find((c) => c.name === topic);
    if (!command) {
      throw new UsageError(
        `no command '${topic}'${didYouMean(topic, COMMAND_NAMES)} (commands: ${COMMAND_NAMES.join(', ')})`,
      );
    }
    process.stdout.write(commandHelp(command));
    return 0;
  }
  if (first.startsWith('-')) {
    throw new UsageError(
      `unknown option '${first}'${didYouMean(first, ['--help', '--version'])} (see 'ane --help')`,
    );
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (!command) {
    throw new UsageError(
      `unknown command '${first}'${didYouMean(first, COMMAND_NAMES)} (commands: ${COMMAND_NAMES.join(', ')}; see 'ane --help')`,
    );
  }
  const { values, positionals, help } = parseCommandArgs(command, rest);
  if (help) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  return command.run(values, positionals);
}

/** One line for stderr: usage mistakes and unavailable devices in CLI terms, anything else by name. */
function describeCliError(error: unknown): string {
  const e = error as Error;
  if (e instanceof UsageError) return `ane: ${e.message}`;
  if (e instanceof DeviceUnavailableError) {
    return `ane: DeviceUnavailableError: the Neural Engine is unavailable: ${e.reason}. Run with --backend sim to use the simulator (the same programs, with the ANE's fp16 numerics and rules), or see 'ane doctor'.`;
  }
  return `ane: ${e?.name ?? 'Error'}: ${e?.message ?? String(error)}`;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    process.stderr.write(`${describeCliError(error)}\n`);
    process.exitCode = 2;
  },
);
