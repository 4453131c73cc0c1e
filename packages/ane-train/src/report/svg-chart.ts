/**
 * A small SVG line-chart writer: a loss curve is a polyline. Pure `data → string` functions with no
 * dependencies, so `loss.svg` and the charts inlined in `report.html` render in any browser or image
 * viewer without scripts or external assets.
 */

export interface ChartSeries {
  name: string;
  /** [x, y] points; non-finite values are left out. */
  points: ReadonlyArray<readonly [number, number]>;
  /** A CSS colour (default: the palette's next colour). */
  color?: string;
  /** Draw a dot at every point (default: only when the series has one point). */
  dots?: boolean;
}

export interface LineChartOptions {
  title: string;
  series: readonly ChartSeries[];
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Plot y on a log10 axis (every y must be > 0; others are left out). */
  logY?: boolean;
  /** Adds the `xmlns` attribute and an XML declaration: a standalone .svg file. */
  standalone?: boolean;
}

export const PALETTE = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2'] as const;

/** Escapes text for XML/HTML content and attribute values. */
export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** About `count` round tick values (1, 2 or 5 × 10^k apart) covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(Number.isFinite(min) && Number.isFinite(max))) return [];
  if (min === max) return [min];
  const raw = (max - min) / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) {
    ticks.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  return ticks;
}

/** A tick label: short, no float noise (1e-3 → '0.001', 12000 → '12k', 3e-4 → '3e-4'). */
export function formatTick(value: number): string {
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude >= 1e6) return `${Number((value / 1e6).toPrecision(3))}M`;
  if (magnitude >= 1e4) return `${Number((value / 1e3).toPrecision(3))}k`;
  if (magnitude < 1e-3) return value.toExponential(0).replace('e+', 'e');
  return String(Number(value.toPrecision(3)));
}

const f = (value: number): string => String(Math.round(value * 100) / 100);

/** A line chart as an `<svg>` element: axes with ticks, one polyline per series, a legend. */
export function lineChartSvg(options: LineChartOptions): string {
  const width = options.width ?? 640;
  const height = options.height ?? 320;
  const margin = { left: 64, right: 16, top: 36, bottom: 44 };
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const transformY = options.logY === true ? Math.log10 : (y: number) => y;
  const series = options.series.map((s, index) => ({
    ...s,
    color: s.color ?? PALETTE[index % PALETTE.length]!,
    points: s.points.filter(
      ([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (options.logY !== true || y > 0),
    ),
  }));
  const all = series.flatMap((s) => s.points);
  const title = escapeXml(options.title);
  const open = options.standalone
    ? `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" `
    : '<svg ';
  const parts: string[] = [
    `${open}width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${title}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${title}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${margin.left}" y="20" font-size="14" font-weight="600" fill="#111827">${title}</text>`,
  ];
  if (all.length === 0) {
    parts.push(
      `<text x="${f(width / 2)}" y="${f(height / 2)}" text-anchor="middle" fill="#6b7280">no data</text>`,
      '</svg>',
    );
    return parts.join('\n');
  }
  let xMin = Math.min(...all.map((p) => p[0]));
  let xMax = Math.max(...all.map((p) => p[0]));
  let yMin = Math.min(...all.map((p) => transformY(p[1])));
  let yMax = Math.max(...all.map((p) => transformY(p[1])));
  if (xMin === xMax) {
    xMin -= 1;
    xMax += 1;
  }
  if (yMin === yMax) {
    const pad = Math.abs(yMin) * 0.1 || 1;
    yMin -= pad;
    yMax += pad;
  } else {
    const pad = (yMax - yMin) * 0.05;
    yMin -= pad;
    yMax += pad;
  }
  const sx = (x: number) => margin.left + ((x - xMin) / (xMax - xMin)) * plotW;
  const sy = (y: number) => margin.top + (1 - (transformY(y) - yMin) / (yMax - yMin)) * plotH;
  const syRaw = (t: number) => margin.top + (1 - (t - yMin) / (yMax - yMin)) * plotH;

  // Grid and y ticks.
  const yTicks =
    options.logY === true
      ? niceTicks(Math.ceil(yMin), Math.floor(yMax), 5).filter(Number.isInteger)
      : niceTicks(yMin, yMax, 5);
  parts.push('<g class="grid" stroke="#e5e7eb" stroke-width="1">');
  for (const t of yTicks)
    parts.push(
      `<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${f(syRaw(t))}" y2="${f(syRaw(t))}"/>`,
    );
  parts.push('</g>');
  parts.push('<g class="y-ticks" fill="#374151" text-anchor="end">');
  for (const t of yTicks)
    parts.push(
      `<text x="${margin.left - 6}" y="${f(syRaw(t) + 4)}">${escapeXml(formatTick(options.logY === true ? 10 ** t : t))}</text>`,
    );
  parts.push('</g>');
  const xTicks = niceTicks(xMin, xMax, 6);
  parts.push('<g class="x-ticks" fill="#374151" text-anchor="middle">');
  for (const t of xTicks)
    parts.push(`<text x="${f(sx(t))}" y="${margin.top + plotH + 16}">${escapeXml(formatTick(t))}</text>`);
  parts.push('</g>');
  // Axes.
  parts.push(
    `<path class="axes" d="M${margin.left},${margin.top} V${margin.top + plotH} H${margin.left + plotW}" fill="none" stroke="#9ca3af" stroke-width="1"/>`,
  );
  if (options.xLabel !== undefined)
    parts.push(
      `<text x="${f(margin.left + plotW / 2)}" y="${height - 8}" text-anchor="middle" fill="#374151">${escapeXml(options.xLabel)}</text>`,
    );
  if (options.yLabel !== undefined)
    parts.push(
      `<text transform="translate(14 ${f(margin.top + plotH / 2)}) rotate(-90)" text-anchor="middle" fill="#374151">${escapeXml(options.yLabel)}</text>`,
    );
  // Series.
  for (const s of series) {
    if (s.points.length === 0) continue;
    const name = escapeXml(s.name);
    if (s.points.length > 1) {
      const coords = s.points.map(([x, y]) => `${f(sx(x))},${f(sy(y))}`).join(' ');
      parts.push(
        `<polyline class="series" data-series="${name}" points="${coords}" fill="none" stroke="${s.color}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"/>`,
      );
    }
    if (s.dots === true || s.points.length === 1) {
      parts.push(`<g class="dots" data-series="${name}" fill="${s.color}">`);
      for (const [x, y] of s.points) parts.push(`<circle cx="${f(sx(x))}" cy="${f(sy(y))}" r="3"/>`);
      parts.push('</g>');
    }
  }
  // Legend (top right).
  const legend = series.filter((s) => s.points.length > 0);
  let lx = width - margin.right;
  parts.push('<g class="legend" fill="#111827" text-anchor="end">');
  for (const s of [...legend].reverse()) {
    const name = escapeXml(s.name);
    parts.push(`<text x="${f(lx)}" y="20">${name}</text>`);
    lx -= s.name.length * 6.5 + 6;
    parts.push(`<rect x="${f(lx - 14)}" y="12" width="14" height="4" fill="${s.color}"/>`);
    lx -= 24;
  }
  parts.push('</g>');
  parts.push('</svg>');
  return parts.join('\n');
}

export interface BarChartOptions {
  title: string;
  bars: ReadonlyArray<{ label: string; value: number; color?: string }>;
  unit?: string;
  width?: number;
  standalone?: boolean;
}

/** A horizontal bar chart (e.g. where a step's milliseconds go) as an `<svg>` element. */
export function barChartSvg(options: BarChartOptions): string {
  const width = options.width ?? 640;
  const rowHeight = 26;
  const labelWidth = 150;
  const valueWidth = 90;
  const top = 36;
  const height = top + options.bars.length * rowHeight + 12;
  const title = escapeXml(options.title);
  const max = Math.max(0, ...options.bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)));
  const plotW = width - labelWidth - valueWidth - 16;
  const open = options.standalone
    ? `<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" `
    : '<svg ';
  const parts = [
    `${open}width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${title}" font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${title}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="8" y="20" font-size="14" font-weight="600" fill="#111827">${title}</text>`,
  ];
  options.bars.forEach((bar, index) => {
    const y = top + index * rowHeight;
    const value = Number.isFinite(bar.value) ? Math.max(0, bar.value) : 0;
    const w = max > 0 ? Math.max(1, (value / max) * plotW) : 1;
    const color = bar.color ?? PALETTE[index % PALETTE.length]!;
    parts.push(
      `<text x="${labelWidth - 8}" y="${y + 15}" text-anchor="end" fill="#374151">${escapeXml(bar.label)}</text>`,
      `<rect class="bar" x="${labelWidth}" y="${y + 3}" width="${f(w)}" height="${rowHeight - 8}" fill="${color}"/>`,
      `<text x="${f(labelWidth + w + 6)}" y="${y + 15}" fill="#111827">${escapeXml(`${formatNumber(bar.value)}${options.unit ?? ''}`)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '–';
  if (Math.abs(value) >= 100) return value.toFixed(0);
  if (Math.abs(value) >= 10) return value.toFixed(1);
  return value.toFixed(2);
}
