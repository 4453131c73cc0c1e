import type { Capabilities } from '../capabilities';

function wrap(label: string, lines: string[]): string {
  const pad = ' '.repeat(16);
  return lines.map((line, i) => (i === 0 ? label.padEnd(16) : pad) + line).join('\n');
}

/** `ane doctor` as text: each part, its reason, and what to do when something is missing. */
export function formatDoctorReport(report: Capabilities, packageVersion: string): string {
  const host = report.hostKernels;
  const hostLines = [
    host.implementation === 'native'
      ? `native addon${host.threads === undefined ? '' : `, ${host.threads} thread${host.threads === 1 ? '' : 's'}`}`
      : 'TypeScript fallbacks (no native addon)',
    `why: ${host.reason}`,
  ];
  if (host.addonPath) hostLines.push(`file: ${host.addonPath}`);
  if (host.fix) hostLines.push(`fix: ${host.fix}`);
  const aneLines = [report.ane.status, `why: ${report.ane.reason}`];
  if (report.ane.fix) aneLines.push(`fix: ${report.ane.fix}`);
  const defaultBackend = report.ane.status === 'available' ? 'ane' : 'sim';
  return [
    `ane doctor: ane-bridge ${packageVersion} on ${report.platform}/${report.arch}, Node ${report.nodeVersion}`,
    '',
    wrap('Host kernels', hostLines),
    wrap('SIMD', [report.simd.level, `why: ${report.simd.reason}`]),
    wrap('Neural Engine', aneLines),
    wrap("backend 'auto'", [`runs on '${defaultBackend}'`]),
    '',
  ].join('\n');
}
