import { type KernelPort, packInput, unpackOutput } from 'ane-ir';
import { decodeFp16, encodeFp16 } from 'ane-ir/mil';
import { describe, expect, it } from 'vitest';
import { copyDeviceValue, portElements, segmentPlacement, stageValue, unstageValue } from './staging';

/** Seeded values, fp16-representable (so staging through fp16 is exact). */
function values(count: number, seed: number): Float32Array {
  let state = seed;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    out[i] = Math.round(((state / 2 ** 31) * 2 - 1) * 1024) / 256;
  }
  return out;
}

type Segment = KernelPort['segments'][number];

function segment(
  source: string,
  shape: number[],
  axis: Segment['axis'],
  offset: number,
  transposed = false,
): Segment {
  const extent = axis === 'channel' ? shape[0]! : transposed ? shape[0]! : (shape[1] ?? 1);
  return { source, role: transposed ? 'weight' : 'activation', shape, axis, offset, extent, transposed };
}

function port(logicalShape: number[], segments: Segment[]): KernelPort {
  return {
    spec: { name: 'x', dtype: 'fp16', shape: [1, logicalShape[0]!, 1, logicalShape[1]!] },
    logicalShape,
    segments,
  };
}

/** The three layouts of a packed input: channel-packed activations, spatially packed x | Wᵀ | W, a whole tensor. */
const PORTS: [string, KernelPort][] = [
  ['channel', port([24, 8], [segment('a', [16, 8], 'channel', 0), segment('b', [8, 8], 'channel', 16)])],
  [
    'spatial with Wᵀ',
    port(
      [16, 40],
      [
        segment('x', [16, 8], 'spatial', 0),
        segment('wq', [24, 16], 'spatial', 8, true),
        segment('w2', [16, 8], 'spatial', 32),
      ],
    ),
  ],
  ['whole', port([4, 6], [segment('v', [4, 6], 'whole', 0)])],
];

describe.each(PORTS)(
  '%s: staging equals ane-ir’s packInput / unpackOutput (the readable twins)',
  (_, port) => {
    const sourceValues = new Map(
      port.segments.map(
        (s, i) =>
          [
            s.source,
            values(
              s.shape.reduce((a, b) => a * b, 1),
              i + 1,
            ),
          ] as const,
      ),
    );
    const bytes = new Uint8Array(port.logicalShape.reduce((a, b) => a * b, 1) * 2);
    const elements = portElements(bytes, 'fp16');

    it('stageValue writes every segment where packInput puts it, Wᵀ included', () => {
      for (const segment of port.segments)
        stageValue(sourceValues.get(segment.source)!, elements, segmentPlacement(port, segment));
      const expected = encodeFp16(packInput(port, (source) => sourceValues.get(source)!));
      expect(Array.from(elements.data as Uint16Array)).toEqual(Array.from(expected));
    });

    it('unstageValue reads each segment back as unpackOutput does', () => {
      const asNumbers = Float32Array.from(decodeFp16(elements.data as Uint16Array));
      const twin = unpackOutput(port, asNumbers);
      for (const segment of port.segments) {
        const out = new Float32Array(sourceValues.get(segment.source)!.length);
        unstageValue(elements, segmentPlacement(port, segment), out);
        expect(Array.from(out), segment.source).toEqual(Array.from(twin.get(segment.source)!));
        expect(Array.from(out), segment.source).toEqual(Array.from(sourceValues.get(segment.source)!));
      }
    });

    it('copyDeviceValue moves fp16 bytes between segments and refuses transposed ones', () => {
      const activation = port.segments.find((s) => s.role === 'activation')!;
      const weight = port.segments.find((s) => s.transposed);
      const target = new Uint8Array(bytes.length);
      const to = portElements(target, 'fp16');
      const place = segmentPlacement(port, activation);
      expect(copyDeviceValue(elements, place, to, place)).toBe(true);
      const out = new Float32Array(sourceValues.get(activation.source)!.length);
      unstageValue(to, place, out);
      expect(Array.from(out)).toEqual(Array.from(sourceValues.get(activation.source)!));
      if (weight !== undefined) {
        const transposed = segmentPlacement(port, weight);
        expect(copyDeviceValue(elements, transposed, to, transposed)).toBe(false);
      }
    });

    it('fp32 ports stage by row copies', () => {
      const floats = new Uint8Array(port.logicalShape.reduce((a, b) => a * b, 1) * 4);
      const f32 = portElements(floats, 'fp32');
      for (const segment of port.segments)
        stageValue(sourceValues.get(segment.source)!, f32, segmentPlacement(port, segment));
      const expected = packInput(port, (source) => sourceValues.get(source)!);
      expect(Array.from(f32.data as Float32Array)).toEqual(Array.from(expected));
    });
  },
);

describe('copyDeviceValue between differently placed segments', () => {
  it('moves fp16 and fp32 rows from one offset and row stride to another', () => {
    const from = port([16, 40], [segment('x', [16, 8], 'spatial', 8)]);
    const to = port([16, 12], [segment('x', [16, 8], 'spatial', 3)]);
    const x = values(16 * 8, 7);
    for (const dtype of ['fp16', 'fp32'] as const) {
      const size = dtype === 'fp16' ? 2 : 4;
      const source = portElements(new Uint8Array(16 * 40 * size), dtype);
      const target = portElements(new Uint8Array(16 * 12 * size), dtype);
      stageValue(x, source, segmentPlacement(from, from.segments[0]!));
      expect(
        copyDeviceValue(
          source,
          segmentPlacement(from, from.segments[0]!),
          target,
          segmentPlacement(to, to.segments[0]!),
        ),
      ).toBe(true);
      const out = new Float32Array(x.length);
      unstageValue(target, segmentPlacement(to, to.segments[0]!), out);
      expect(Array.from(out), dtype).toEqual(Array.from(x));
      // Nothing outside the segment was written.
      const data = target.data;
      for (let r = 0; r < 16; r++)
        for (const c of [0, 1, 2, 11]) expect(data[r * 12 + c], `${dtype} (${r}, ${c})`).toBe(0);
    }
  });
});
