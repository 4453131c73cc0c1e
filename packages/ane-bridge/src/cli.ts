import { parseArgs } from 'node:util';
import { version } from '../package.json';
import { capabilities } from './capabilities';
import { formatDoctorReport } from './cli/doctor';

const USAGE = `Usage: ane <command> [options]

Commands:
  doctor [--json]    what this machine supports (native kernels, SIMD, Neural Engine) and how to fix what is missing

Options:
  -h, --help         show this help
  -v, --version      print the ane-bridge version
`;

export function main(argv: string[]): number {
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
  process.stderr.write(`ane: unknown command '${command}'\n\n${USAGE}`);
  return 2;
}

try {
  process.exitCode = main(process.argv.slice(2));
} catch (error) {
  process.stderr.write(`ane: ${(error as Error).message}\n`);
  process.exitCode = 2;
}
