import { parseArgs } from 'node:util';
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
import { nativeAddon } from './native/loader';

const USAGE = `Usage: ane <command> [options]

Commands:
  doctor [--json]    what this machine supports (native kernels, SIMD, Neural Engine) and how to fix what is missing
  conformance [dirs...] [--backend auto|sim|ane] [--chip M1..M5] [--json]
                     run conformance cases (default: the corpus shipped with ane-bridge); exits 0 only if all pass
  bench [--backend auto|sim|ane] [--iterations N] [--json]
                     time a Stories15M transformer layer forward on a device: compile time, run time, GFLOP/s
  probe [--json]     run the Neural Engine probe again (a one-op program in a child process) and cache its verdict

Options:
  -h, --help         show this help
  -v, --version      print the ane-bridge version
`;

const CHIPS: readonly ChipFamily[] = ['M1', 'M2', 'M3', 'M4', 'M5'];

function conformance(args: string[]): number {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      backend: { type: 'string', default: 'auto' },
      chip: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  const backend = values.backend;
  if (backend !== 'auto' && backend !== 'sim' && backend !== 'ane') {
    throw new UsageError(`--backend must be auto, sim or ane, got '${backend}'`);
  }
  const chip = values.chip;
  if (chip !== undefined && !CHIPS.includes(chip as ChipFamily)) {
    throw new UsageError(`--chip must be one of ${CHIPS.join(', ')}, got '${chip}'`);
  }
  const caseDirs = conformanceCaseDirs(positionals);
  using device = openDevice({ backend, ...(chip ? { chip: chip as ChipFamily } : {}) });
  const results = runConformance(caseDirs, device);
  const passed = results.filter((r) => r.pass).length;
  if (values.json) {
    const report = {
      backend: device.backend,
      chip: device.chip,
      passed,
      failed: results.length - passed,
      cases: results,
    };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(formatConformanceTable(results, device));
  }
  return passed === results.length ? 0 : 1;
}

async function bench(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      backend: { type: 'string', default: 'auto' },
      iterations: { type: 'string', default: '10' },
      json: { type: 'boolean', default: false },
    },
  });
  const backend = values.backend;
  if (backend !== 'auto' && backend !== 'sim' && backend !== 'ane') {
    throw new UsageError(`--backend must be auto, sim or ane, got '${backend}'`);
  }
  const iterations = Number(values.iterations);
  if (!Number.isInteger(iterations) || iterations < 1) {
    throw new UsageError(`--iterations must be a whole number ≥ 1, got '${values.iterations}'`);
  }
  using device = openDevice({ backend });
  const result = await runBench(device, { iterations });
  process.stdout.write(values.json ? `${JSON.stringify(result, null, 2)}\n` : formatBench(result));
  return 0;
}

function probe(args: string[]): number {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } } });
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

class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 1 : 0;
  }
  if (command === '-v' || command === '--version') {
    process.stdout.write(`${version}\n`);
    return 0;
  }
  if (command === 'doctor') {
    const { values } = parseArgs({ args: rest, options: { json: { type: 'boolean', default: false } } });
    const report = capabilities();
    process.stdout.write(
      values.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctorReport(report, version),
    );
    return 0;
  }
  if (command === 'conformance') return conformance(rest);
  if (command === 'bench') return bench(rest);
  if (command === 'probe') return probe(rest);
  if (command === PROBE_CHILD_COMMAND) return probeChild();
  process.stderr.write(`ane: unknown command '${command}'\n\n${USAGE}`);
  return 2;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    const e = error as Error;
    const usage = e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    process.stderr.write(usage ? `ane: ${e.message}\n\n${USAGE}` : `ane: ${e.name}: ${e.message}\n`);
    process.exitCode = 2;
  },
);
