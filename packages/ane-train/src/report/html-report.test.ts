import { describe, expect, it } from 'vitest';
import { renderReportHtml } from './html-report';
import { checkWellFormed } from './xml-check.test-helper';

describe('report.html', () => {
  it('is one self-contained page: inline SVG charts (loss with validation, lr, throughput, profile), no scripts or external assets', () => {
    const html = renderReportHtml({
      title: 'run <1>',
      metrics: [
        { step: 0, valLoss: 5.5 },
        { step: 1, loss: 5.4, lr: 1e-3, tokensPerSec: 1000 },
        { step: 2, loss: 4, lr: 2e-3, tokensPerSec: 1100, valLoss: 4.2 },
      ],
      profile: { deviceMs: 10, hostMs: 5, stagingMs: 1, idleMs: 0, optimizerMs: 2, totalMs: 18 },
      device: { backend: 'sim', chip: 'M4' },
      model: { hidden_size: 64 },
      options: { steps: 2, data: 'a&b.txt' },
      sample: { prompt: 'Once', text: 'Once upon <a> time', tokensPerSecond: 12 },
      summary: [['steps', '2']],
      date: new Date(0),
    });
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html.match(/<svg /g)).toHaveLength(4);
    expect(html.match(/<polyline/g)!.length).toBeGreaterThanOrEqual(4); // training, validation, lr, throughput
    expect(html).not.toMatch(/<script|<link|src=|url\(/);
    expect(html).toContain('<title>run &lt;1&gt;</title>');
    expect(html).toContain('Once upon &lt;a&gt; time');
    expect(html).toContain('a&amp;b.txt');
    checkWellFormed(html.replace('<!DOCTYPE html>', '').replace(/<meta [^>]*>/g, ''));
  });
});
