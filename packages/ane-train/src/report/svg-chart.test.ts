import { describe, expect, it } from 'vitest';
import { barChartSvg, escapeXml, formatTick, lineChartSvg, niceTicks } from './svg-chart';
import { checkWellFormed } from './xml-check.test-helper';

describe('lineChartSvg', () => {
  it('maps points into the plot box: x from the left margin (64) over 560 px, y from the top (36) over 240 px with 5% padding', () => {
    const svg = lineChartSvg({
      title: 'Loss',
      width: 640,
      height: 320,
      series: [
        {
          name: 'training',
          points: [
            [0, 0],
            [10, 10],
          ],
        },
      ],
    });
    // y range [0, 10] padded by 0.5 each side → [-0.5, 10.5]; y=0 sits at 36 + (1 - 0.5/11)·240.
    const y0 = 36 + (1 - 0.5 / 11) * 240;
    const y10 = 36 + (1 - 10.5 / 11) * 240;
    const points = /<polyline[^>]*points="([^"]+)"/.exec(svg)![1]!.split(' ');
    expect(points).toEqual([`64,${Math.round(y0 * 100) / 100}`, `624,${Math.round(y10 * 100) / 100}`]);
    checkWellFormed(svg);
  });

  it('draws one polyline per series, a dot for a single point, and escapes titles', () => {
    const svg = lineChartSvg({
      title: 'a < b & "c"',
      standalone: true,
      series: [
        {
          name: 'training',
          points: [
            [1, 3],
            [2, 2],
            [3, 1],
          ],
        },
        { name: 'validation', points: [[3, 1.5]] },
        { name: 'nan', points: [[1, Number.NaN]] },
      ],
    });
    expect(svg.startsWith('<?xml')).toBe(true);
    expect(svg).toContain('xmlns="http://www.w3.org/2000/svg"');
    expect(svg.match(/<polyline/g)).toHaveLength(1);
    expect(svg.match(/<circle/g)).toHaveLength(1);
    expect(svg).toContain('<title>a &lt; b &amp; &quot;c&quot;</title>');
    expect(svg).not.toContain('>nan<'); // a series with no finite point has no legend entry
    checkWellFormed(svg);
  });

  it('says "no data" when there is nothing to draw', () => {
    const svg = lineChartSvg({ title: 'empty', series: [{ name: 'x', points: [] }] });
    expect(svg).toContain('no data');
    expect(svg).not.toContain('<polyline');
    checkWellFormed(svg);
  });
});

describe('chart helpers', () => {
  it('niceTicks steps by 1, 2 or 5 × 10^k', () => {
    expect(niceTicks(0, 10, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(1.3, 5.6, 8)).toEqual([2, 3, 4, 5]);
    expect(niceTicks(1.3, 5.6, 4)).toEqual([2, 4]);
    expect(niceTicks(0, 0.001, 2)).toEqual([0, 0.0005, 0.001]);
    expect(niceTicks(3, 3)).toEqual([3]);
  });

  it('formatTick prints short labels', () => {
    expect(formatTick(0)).toBe('0');
    expect(formatTick(0.30000000000000004)).toBe('0.3');
    expect(formatTick(12000)).toBe('12k');
    expect(formatTick(2500000)).toBe('2.5M');
    expect(formatTick(0.0003)).toBe('3e-4');
  });

  it('escapeXml escapes the five characters', () => {
    expect(escapeXml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('barChartSvg draws bars proportional to the values', () => {
    const svg = barChartSvg({
      title: 'profile',
      bars: [
        { label: 'device', value: 50 },
        { label: 'host', value: 25 },
      ],
    });
    const widths = [...svg.matchAll(/<rect class="bar"[^>]*width="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(widths).toHaveLength(2);
    expect(widths[0]! / widths[1]!).toBeCloseTo(2, 5);
    checkWellFormed(svg);
  });
});
