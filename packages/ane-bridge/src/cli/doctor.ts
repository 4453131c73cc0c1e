import type { Capabilities } from '../capabilities';

function wrap(label: string, lines: string[]): string {
  const pad = ' '.repeat(16);
  return lines.map((line, i) => (i === 0 ? label.padEnd(16) : pad) + line).join('\n');
}

const KIND: Record<NonNullable<Capabilities['hostKernels']['addonKind']>, string> = {
  prebuilt: 'prebuilt (shipped in prebuilds/; nothing was compiled)',
  source: 'built from source (build/Release)',
  override: 'override (ANE_BRIDGE_NATIVE_PATH)',
};

/** `ane doctor` as text: each part, its reason, and what to do when something is missing. */
export function formatDoctorReport(report: Capabilities, packageVersion: string): string {
  const host = report.hostKernels;
  const threads =
    host.threads === undefined ? '' : `, ${host.threads} thread${host.threads === 1 ? '' : 's'}`;
  const hostLines = [
    host.implementation === 'native' ? `native addon${threads}` : 'TypeScript fallbacks (no native addon)',
  ];
  if (host.addonKind) hostLines.push(`binary: ${KIND[host.addonKind]}`);
  if (host.addonPath) hostLines.push(`file: ${host.addonPath}`);
  hostLines.push(`why: ${host.reason}`);
  if (host.fix) hostLines.push(`fix: ${host.fix}`);
  const aneLines = [report.ane.status, `why: ${report.ane.reason}`];
  if (report.ane.fix) aneLines.push(`fix: ${report.ane.fix}`);
  const defaultBackend = report.ane.status === 'available' ? 'ane' : 'sim';
  const environment = report.environment ?? [];
  const envLines =
    environment.length === 0
      ? ['no problems with the ANE_BRIDGE_* variables']
      : environment.flatMap((p) => [`${p.name}=${p.value}: ${p.problem}`, `  fix: ${p.fix}`]);
  return [
    `ane doctor: ane-bridge ${packageVersion} on ${report.platform}/${report.arch}, Node ${report.nodeVersion}`,
    '',
    wrap('Host kernels', hostLines),
    wrap('SIMD', [report.simd.level, `why: ${report.simd.reason}`]),
    wrap('Neural Engine', aneLines),
    wrap("backend 'auto'", [`runs on '${defaultBackend}'`]),
    wrap('Environment', envLines),
    '',
  ].join('\n');
}
