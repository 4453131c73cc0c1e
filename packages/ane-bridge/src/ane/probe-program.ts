/**
 * The probe's one-op program: y = add(x, x) on a [1, 64, 1, 32] fp16 tensor (4,096 bytes, a
 * 64-byte innermost axis: rule io-alignment), single input and output (reference §4.5), no
 * weights (an empty weights dictionary). Inputs are multiples of 1/4 in [-7.5, 7.5], so 2x is exact
 * in fp16 and the result can be checked bit for bit.
 */
import { decodeFp16, encodeFp16, type Program } from 'ane-ir/mil';

const BUILD_INFO =
  '[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}, {"coremltools-component-milinternal", ""}, {"coremltools-version", "9.0"}})]';

const SHAPE = [1, 64, 1, 32];

export const PROBE_PROGRAM: Program = {
  mil: `program(1.3)
${BUILD_INFO}
{
    func main<ios18>(tensor<fp16, [1, 64, 1, 32]> x) {
        tensor<fp16, [1,64,1,32]> y = add(x=x,y=x)[name=string("y")];
    } -> (y);
}
`,
  weights: new Map(),
  inputs: [{ name: 'x', dtype: 'fp16', shape: SHAPE }],
  outputs: [{ name: 'y', dtype: 'fp16', shape: SHAPE }],
};

const ELEMENTS = SHAPE.reduce((a, b) => a * b, 1);

/** The probe input as device bytes. */
export function probeInput(): Uint8Array {
  const values = new Float32Array(ELEMENTS);
  for (let i = 0; i < ELEMENTS; i++) values[i] = ((i % 61) - 30) / 4;
  const bits = encodeFp16(values);
  return new Uint8Array(bits.buffer, bits.byteOffset, bits.byteLength);
}

/** Why `output` is not 2·input, or undefined when it is, element for element. */
export function checkProbeOutput(input: Uint8Array, output: Uint8Array): string | undefined {
  // new Uint8Array(view) copies into a fresh buffer; a Buffer's slice() is a view into Node's pool.
  const x = decodeFp16(new Uint16Array(new Uint8Array(input).buffer));
  const y = decodeFp16(new Uint16Array(new Uint8Array(output).buffer));
  let wrong = 0;
  let first = -1;
  for (let i = 0; i < ELEMENTS; i++) {
    if (y[i] !== 2 * x[i]!) {
      wrong++;
      if (first < 0) first = i;
    }
  }
  if (wrong === 0) return undefined;
  return `${wrong} of ${ELEMENTS} elements differ from 2·x (first at ${first}: got ${y[first]}, expected ${2 * x[first]!})`;
}
