/**
 * Opt-in: report.html rendered in headless Chromium, its charts visible. Runs when a Chromium is
 * installed (`apt-get install chromium`, or CHROMIUM=/path/to/chrome); skipped otherwise, with the
 * reason in the test name.
 *
 * The report has no scripts of its own; the test renders a copy with a measuring script appended
 * (`--dump-dom` prints the DOM after it ran): every chart's <svg> and every curve must have a
 * non-zero size on the page. A screenshot of the report must also be far from blank (a PNG of a
 * blank page of the same size compresses to a small fraction of it).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderReportHtml } from '../src/report/html-report';

const CANDIDATES = [
  process.env.CHROMIUM,
  '/usr/bin/chromium',
  '/usr/bin/chromium-browser',
  '/usr/bin/google-chrome',
];
const chromium = CANDIDATES.find(
  (path): path is string => path !== undefined && path !== '' && existsSync(path),
);
const dir = mkdtempSync(join(tmpdir(), 'ane-train-report-chromium-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): string {
  return execFileSync(
    chromium!,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--hide-scrollbars',
      `--user-data-dir=${join(dir, 'profile')}`,
      ...args,
    ],
    { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] },
  );
}

const MEASURE = `<script>
const rows = [...document.querySelectorAll('.chart > svg')].map((svg) => {
  const box = svg.getBoundingClientRect();
  const curves = [...svg.querySelectorAll('polyline, rect.bar')].map((el) => {
    const b = el.getBBox();
    return { tag: el.tagName, width: b.width, height: b.height, length: el.tagName === 'polyline' ? el.getTotalLength() : b.width };
  });
  return { title: svg.querySelector('title').textContent, width: box.width, height: box.height, curves };
});
const out = document.createElement('pre');
out.id = 'measure';
out.textContent = JSON.stringify(rows);
document.body.appendChild(out);
</script>`;

describe.skipIf(chromium === undefined)(
  `report.html in headless Chromium${chromium === undefined ? ' (skipped: no Chromium found; apt-get install chromium or set CHROMIUM)' : ''}`,
  () => {
    const html = renderReportHtml({
      title: 'chromium check',
      metrics: Array.from({ length: 40 }, (_, i) => ({
        step: i + 1,
        loss: 5.5 * Math.exp(-i / 10) + 0.5,
        lr: 3e-3 * Math.min(1, (i + 1) / 5),
        tokensPerSec: 3000 + 100 * Math.sin(i),
        ...(i % 10 === 9 ? { valLoss: 5.5 * Math.exp(-i / 10) + 0.6 } : {}),
      })),
      profile: { deviceMs: 60, hostMs: 40, stagingMs: 5, idleMs: 2, optimizerMs: 1, totalMs: 110 },
      device: { backend: 'sim', chip: 'M4' },
      model: { hidden_size: 64 },
      options: { steps: 40 },
    });

    it('every chart and every curve has a non-zero size on the rendered page', () => {
      const page = join(dir, 'measured.html');
      writeFileSync(page, html.replace('</body>', `${MEASURE}</body>`));
      const dom = run(['--dump-dom', `file://${page}`]);
      const json = /<pre id="measure">([^<]*)<\/pre>/.exec(dom)?.[1];
      expect(json, 'the measuring script ran').toBeDefined();
      const rows = JSON.parse(json!.replace(/&quot;/g, '"').replace(/&amp;/g, '&')) as {
        title: string;
        width: number;
        height: number;
        curves: { tag: string; width: number; height: number; length: number }[];
      }[];
      expect(rows.map((r) => r.title)).toEqual([
        'Loss',
        'Learning rate',
        'Throughput',
        expect.stringMatching(/^Step profile/),
      ]);
      for (const row of rows) {
        expect(row.width, row.title).toBeGreaterThan(100);
        expect(row.height, row.title).toBeGreaterThan(100);
        expect(row.curves.length, row.title).toBeGreaterThan(0);
        for (const curve of row.curves)
          expect(curve.length, `${row.title} ${curve.tag}`).toBeGreaterThan(
            curve.tag === 'polyline' ? 10 : 0,
          );
      }
      expect(rows[0]!.curves.filter((c) => c.tag === 'polyline')).toHaveLength(2); // training and validation
    }, 90_000);

    it('a screenshot of the report is far from blank', () => {
      const report = join(dir, 'report.html');
      const blank = join(dir, 'blank.html');
      writeFileSync(report, html);
      writeFileSync(blank, '<!DOCTYPE html><html><body></body></html>');
      const size = (page: string, png: string) => {
        run([`--screenshot=${png}`, '--window-size=1000,1400', `file://${page}`]);
        return statSync(png).size;
      };
      const reportBytes = size(report, join(dir, 'report.png'));
      const blankBytes = size(blank, join(dir, 'blank.png'));
      expect(reportBytes).toBeGreaterThan(10 * blankBytes);
    }, 90_000);
  },
);
