/**
 * `report.html`: one self-contained page per training run: the loss and validation curves, the
 * learning rate, the throughput, where a step's time went, the plan, the device and the config. Every
 * chart is an inline `<svg>` and the styles are inline: no scripts, no external assets, so the file
 * opens anywhere (a browser, a CI artifact viewer, an e-mail attachment).
 */
import type { PlanSummary } from '../plan-summary';
import { formatPlanSummary } from '../plan-summary';
import type { MetricsRecord } from './metrics';
import { barChartSvg, escapeXml, lineChartSvg } from './svg-chart';

/** Mean milliseconds per optimizer step. */
export interface ReportStepProfile {
  deviceMs: number;
  hostMs: number;
  stagingMs: number;
  idleMs: number;
  optimizerMs: number;
  totalMs: number;
}

export interface RunReport {
  title: string;
  metrics: readonly MetricsRecord[];
  /** Mean per-step profile over the run. */
  profile?: ReportStepProfile;
  plan?: PlanSummary;
  device: { backend: string; chip?: string; hostKernels?: string; platform?: string; node?: string };
  /** The model's config (Hugging Face names). */
  model: Record<string, unknown>;
  /** The run's resolved options. */
  options: Record<string, unknown>;
  sample?: { prompt: string; text: string; tokensPerSecond: number };
  /** Free-form lines for the summary table (e.g. `steps: 1000`). */
  summary?: ReadonlyArray<readonly [string, string]>;
  /** When the report was written (default now). */
  date?: Date;
}

/** The loss chart: training loss and validation loss against the step. */
export function lossChartSvg(
  metrics: readonly MetricsRecord[],
  options: { standalone?: boolean; width?: number; height?: number } = {},
): string {
  return lineChartSvg({
    title: 'Loss',
    xLabel: 'step',
    yLabel: 'cross-entropy (nats)',
    series: [
      { name: 'training', points: points(metrics, 'loss') },
      { name: 'validation', points: points(metrics, 'valLoss'), dots: true },
    ],
    ...options,
  });
}

function points(
  metrics: readonly MetricsRecord[],
  key: 'loss' | 'lr' | 'tokensPerSec' | 'valLoss',
): [number, number][] {
  const out: [number, number][] = [];
  for (const record of metrics) {
    const value = record[key];
    if (typeof value === 'number' && Number.isFinite(value)) out.push([record.step, value]);
  }
  return out;
}

function table(rows: ReadonlyArray<readonly [string, string]>): string {
  return `<table>${rows.map(([k, v]) => `<tr><th>${escapeXml(k)}</th><td>${escapeXml(v)}</td></tr>`).join('')}</table>`;
}

function flatten(value: Record<string, unknown>): [string, string][] {
  return Object.entries(value)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]);
}

const STYLE = `
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1000px; color: #111827; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; }
.sub { color: #6b7280; margin-top: 0; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart { border: 1px solid #e5e7eb; border-radius: 6px; padding: 4px; background: #fff; }
table { border-collapse: collapse; font-size: 13px; }
th { text-align: left; font-weight: 600; padding: 3px 12px 3px 0; vertical-align: top; white-space: nowrap; }
td { padding: 3px 0; font-family: ui-monospace, Menlo, Consolas, monospace; word-break: break-all; }
pre { background: #f9fafb; border: 1px solid #e5e7eb; border-radius: 6px; padding: 12px; overflow-x: auto; font-size: 12px; }
.sample { white-space: pre-wrap; }
`;

/** The whole report as one HTML document. */
export function renderReportHtml(report: RunReport): string {
  const { metrics } = report;
  const date = (report.date ?? new Date()).toISOString();
  const charts = [
    lossChartSvg(metrics),
    lineChartSvg({
      title: 'Learning rate',
      xLabel: 'step',
      yLabel: 'learning rate',
      series: [{ name: 'lr', points: points(metrics, 'lr') }],
    }),
    lineChartSvg({
      title: 'Throughput',
      xLabel: 'step',
      yLabel: 'tokens / s',
      series: [{ name: 'tokens/s', points: points(metrics, 'tokensPerSec'), color: '#059669' }],
    }),
  ];
  if (report.profile !== undefined) {
    const p = report.profile;
    charts.push(
      barChartSvg({
        title: `Step profile (mean of ${p.totalMs.toFixed(1)} ms per step)`,
        unit: ' ms',
        bars: [
          { label: 'device kernels', value: p.deviceMs },
          { label: 'host kernels', value: p.hostMs },
          { label: 'staging', value: p.stagingMs },
          { label: 'idle', value: p.idleMs },
          { label: 'optimizer', value: p.optimizerMs },
          { label: 'total', value: p.totalMs, color: '#6b7280' },
        ],
      }),
    );
  }
  const device: [string, string][] = [['backend', report.device.backend]];
  if (report.device.chip !== undefined) device.push(['chip', report.device.chip]);
  if (report.device.hostKernels !== undefined) device.push(['host kernels', report.device.hostKernels]);
  if (report.device.platform !== undefined) device.push(['platform', report.device.platform]);
  if (report.device.node !== undefined) device.push(['node', report.device.node]);
  const sections = [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeXml(report.title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<h1>${escapeXml(report.title)}</h1>`,
    `<p class="sub">written ${escapeXml(date)} by ane-train</p>`,
  ];
  if (report.summary !== undefined && report.summary.length > 0)
    sections.push('<h2>Summary</h2>', table(report.summary));
  sections.push(
    '<h2>Training</h2>',
    `<div class="charts">${charts.map((svg) => `<div class="chart">${svg}</div>`).join('')}</div>`,
  );
  if (report.sample !== undefined) {
    sections.push(
      '<h2>A sample</h2>',
      `<p class="sub">prompt ${escapeXml(JSON.stringify(report.sample.prompt))}, ${report.sample.tokensPerSecond.toFixed(1)} tokens/s</p>`,
      `<pre class="sample">${escapeXml(report.sample.text)}</pre>`,
    );
  }
  sections.push('<h2>Device</h2>', table(device));
  sections.push('<h2>Model</h2>', table(flatten(report.model)));
  if (report.plan !== undefined) {
    sections.push(
      '<h2>The plan of a step</h2>',
      `<p class="sub">${report.plan.programs} distinct programs (compiled once each), ${report.plan.kernelRunsPerStep} kernel runs and ${report.plan.hostOpsPerStep} host ops per step</p>`,
      `<pre class="plan">${escapeXml(formatPlanSummary(report.plan))}</pre>`,
    );
  }
  sections.push('<h2>Options</h2>', table(flatten(report.options)));
  sections.push('</body>', '</html>', '');
  return sections.join('\n');
}
