/**
 * One training step of a linear layer in the dynamic-weight pipeline (reference §4.6, §6.3), run on
 * any device: the forward y = Wᵀx and the input gradient dx = W·dy run on the device as runtime-weight
 * matmuls with the weights packed next to the activations along the spatial axis (the pattern of
 * conformance case B); the loss, dW and the SGD update run on the host in float64. Used by the
 * hardware test (ANE vs simulator) and by its Linux twin (the fake platform vs the simulator).
 */
import { decodeFp16, encodeFp16, type Program } from 'ane-ir/mil';
import type { Device } from '../../src/device/device';

const BUILD_INFO =
  '[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}, {"coremltools-component-milinternal", ""}, {"coremltools-version", "9.0"}})]';

/**
 * y[o, s] = Σ_i W[i, o]·x[i, s] with one fp16 input [1, IC, 1, SEQ+OC]: channel i holds x[i, 0..SEQ)
 * then W[i, 0..OC). Output [1, OC, 1, SEQ].
 */
export function packedMatmulProgram(ic: number, oc: number, seq: number, name: string): Program {
  const t = (shape: readonly number[]) => `tensor<fp16, [${shape.join(',')}]>`;
  const i4 = (values: readonly number[]) => `tensor<int32, [4]>([${values.join(',')}])`;
  const constant = (id: string, values: readonly number[]) =>
    `        tensor<int32, [4]> ${id} = const()[name=string("${id}"), val=${i4(values)}];`;
  const mil = [
    'program(1.3)',
    BUILD_INFO,
    '{',
    `    func main<ios18>(tensor<fp16, [1, ${ic}, 1, ${seq + oc}]> x) {`,
    constant('ba', [0, 0, 0, 0]),
    constant('sa', [1, ic, 1, seq]),
    `        ${t([1, ic, 1, seq])} act = slice_by_size(x=x,begin=ba,size=sa)[name=string("act")];`,
    constant('bw', [0, 0, 0, seq]),
    constant('sw', [1, ic, 1, oc]),
    `        ${t([1, ic, 1, oc])} wt = slice_by_size(x=x,begin=bw,size=sw)[name=string("wt")];`,
    constant('ra', [1, 1, ic, seq]),
    `        ${t([1, 1, ic, seq])} a2 = reshape(shape=ra,x=act)[name=string("a2")];`,
    constant('pm', [0, 1, 3, 2]),
    `        ${t([1, 1, seq, ic])} a3 = transpose(perm=pm,x=a2)[name=string("a3")];`,
    constant('rw', [1, 1, ic, oc]),
    `        ${t([1, 1, ic, oc])} w2 = reshape(shape=rw,x=wt)[name=string("w2")];`,
    '        bool bF = const()[name=string("bF"), val=bool(false)];',
    `        ${t([1, 1, seq, oc])} yh = matmul(transpose_x=bF,transpose_y=bF,x=a3,y=w2)[name=string("yh")];`,
    `        ${t([1, 1, oc, seq])} yt = transpose(perm=pm,x=yh)[name=string("yt")];`,
    constant('ro', [1, oc, 1, seq]),
    `        ${t([1, oc, 1, seq])} ${name} = reshape(shape=ro,x=yt)[name=string("${name}")];`,
    `    } -> (${name});`,
    '}',
    '',
  ].join('\n');
  return {
    mil,
    weights: new Map(),
    inputs: [{ name: 'x', dtype: 'fp16', shape: [1, ic, 1, seq + oc] }],
    outputs: [{ name, dtype: 'fp16', shape: [1, oc, 1, seq] }],
  };
}

/** Packs activations a[rows, seq] and weights w[rows, cols] into one [rows, seq + cols] fp16 input. */
function pack(a: Float64Array, w: Float64Array, rows: number, seq: number, cols: number): Uint16Array {
  const values = new Float32Array(rows * (seq + cols));
  for (let r = 0; r < rows; r++) {
    for (let s = 0; s < seq; s++) values[r * (seq + cols) + s] = a[r * seq + s]!;
    for (let c = 0; c < cols; c++) values[r * (seq + cols) + seq + c] = w[r * cols + c]!;
  }
  return encodeFp16(values);
}

function random(count: number, scale: number, seed: number): Float64Array {
  let state = seed >>> 0;
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = ((state / 2 ** 32) * 2 - 1) * scale;
  }
  return values;
}

export interface StepResult {
  /** Forward output before the update, [OC, SEQ]. */
  y: Float32Array;
  /** Input gradient, [IC, SEQ]. */
  dx: Float32Array;
  /** fp32 master weights after the update, [IC, OC]. */
  weights: Float32Array;
  /** Forward output after the update, [OC, SEQ]. */
  yAfter: Float32Array;
  loss: number;
  lossAfter: number;
}

export const STEP_SIZES = { ic: 64, oc: 96, seq: 32 } as const;

/** Runs forward, backward (dx on the device, dW on the host), SGD, and forward again on `device`. */
export async function trainingStep(device: Device, learningRate = 0.05): Promise<StepResult> {
  const { ic, oc, seq } = STEP_SIZES;
  const x = random(ic * seq, 1, 1);
  const weights = random(ic * oc, 1 / Math.sqrt(ic), 2); // W[i, o]
  const target = random(oc * seq, 0.5, 3);
  using forward = device.compile(packedMatmulProgram(ic, oc, seq, 'y'));
  using backward = device.compile(packedMatmulProgram(oc, ic, seq, 'dx'));

  const runForward = async (w: Float64Array) => {
    const [out] = await forward.run([pack(x, w, ic, seq, oc)]);
    return out!.read();
  };
  const lossOf = (y: Float32Array) => {
    let sum = 0;
    for (let k = 0; k < y.length; k++) sum += 0.5 * (y[k]! - target[k]!) ** 2;
    return sum;
  };

  const y = await runForward(weights);
  const loss = lossOf(y);
  const dy = new Float64Array(oc * seq);
  for (let k = 0; k < dy.length; k++) dy[k] = y[k]! - target[k]!;
  // dx = W·dy on the device: its packed weights are Wᵀ[o, i] = W[i, o].
  const transposed = new Float64Array(oc * ic);
  for (let i = 0; i < ic; i++) for (let o = 0; o < oc; o++) transposed[o * ic + i] = weights[i * oc + o]!;
  const [dxBuffer] = await backward.run([pack(dy, transposed, oc, seq, ic)]);
  const dx = dxBuffer!.read();
  // dW[i, o] = Σ_s x[i, s]·dy[o, s] on the host, then SGD on fp32 masters (fp16 dy as the device saw it).
  const dyHalf = decodeFp16(encodeFp16(Float32Array.from(dy)));
  const updated = new Float64Array(ic * oc);
  for (let i = 0; i < ic; i++) {
    for (let o = 0; o < oc; o++) {
      let grad = 0;
      for (let s = 0; s < seq; s++) grad += x[i * seq + s]! * dyHalf[o * seq + s]!;
      updated[i * oc + o] = Math.fround(weights[i * oc + o]! - learningRate * grad);
    }
  }
  const yAfter = await runForward(updated);
  return { y, dx, weights: Float32Array.from(updated), yAfter, loss, lossAfter: lossOf(yAfter) };
}
