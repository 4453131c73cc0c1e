import { describe, expect, it } from 'vitest';
import {
  decodeFp16,
  encodeFp16,
  FP16_MAX,
  fp16BitsFromNumber,
  numberFromFp16Bits,
  roundToFp16,
} from './fp16';

describe('fp16', () => {
  it('encodes hand-checked values', () => {
    // Values from the IEEE 754 binary16 tables.
    expect(fp16BitsFromNumber(1)).toBe(0x3c00);
    expect(fp16BitsFromNumber(-2)).toBe(0xc000);
    expect(fp16BitsFromNumber(65504)).toBe(0x7bff);
    expect(fp16BitsFromNumber(2 ** -24)).toBe(0x0001);
    expect(fp16BitsFromNumber(2 ** -14)).toBe(0x0400);
    expect(fp16BitsFromNumber(0)).toBe(0);
    expect(fp16BitsFromNumber(-0)).toBe(0x8000);
    expect(fp16BitsFromNumber(Number.POSITIVE_INFINITY)).toBe(0x7c00);
    expect(fp16BitsFromNumber(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(fp16BitsFromNumber(Number.NaN) & 0x3ff).not.toBe(0);
  });

  it('rounds to nearest, ties to even, and overflows to infinity', () => {
    // The corpus README: fp16(0.176777) is 0.1767578125.
    expect(roundToFp16(0.176777)).toBe(0.1767578125);
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
    expect(roundToFp16(1 + 2 ** -11)).toBe(1);
    expect(roundToFp16(1 + 3 * 2 ** -11)).toBe(1 + 2 * 2 ** -10);
    expect(roundToFp16(65519)).toBe(FP16_MAX);
    expect(roundToFp16(65520)).toBe(Number.POSITIVE_INFINITY);
    expect(roundToFp16(2 ** -26)).toBe(0);
  });

  it('round-trips every fp16 bit pattern', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const decoded = decodeFp16(all);
    const encoded = encodeFp16(decoded);
    for (let h = 0; h < 65536; h++) {
      const encodesNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (encodesNaN) expect(Number.isNaN(numberFromFp16Bits(h))).toBe(true);
      else expect(encoded[h]).toBe(h);
    }
  });
});
