/**
 * Fused optimizer updates over flat fp32 arrays, the readable twins of native/kernels/optimizers.cc.
 *
 * Each function updates `params` (and its state) in place in one pass, with torch.optim's formulas
 * and order of operations in float32 arithmetic (Math.fround after every operation), so results
 * agree with PyTorch to about 1e-6 relative. When `fp16Out` is given, the updated weights are also
 * written to it as fp16 bits (round to nearest even, overflow to ±inf) in the same pass.
 *
 * params, grads, state and fp16Out: [n], all the same length (RangeError naming the argument
 * otherwise).
 */
import { fp32BitsToFp16Bits } from 'ane-ir/mil';
import {
  checkBooleanOption,
  checkFiniteOption,
  checkGradScaleOption,
  checkLength,
  checkOptionalTypedArray,
  checkOptionsObject,
  checkTypedArray,
} from './checks';

const f = Math.fround;

/** The option every fused update takes. */
export interface GradScaleOption {
  /**
   * Multiplies each gradient as it is read (rounded once, in fp32; default 1): unscaling a
   * loss-scaled gradient and clipping it, folded into the update. `grads` is left as it is.
   */
  gradScale?: number;
}

export interface SgdOptions extends GradScaleOption {
  lr: number;
  momentum: number;
  dampening: number;
  nesterov: boolean;
  /** L2 penalty added to the gradient: g += weightDecay * p. */
  weightDecay: number;
  /** The buffer's first step: PyTorch sets it to the gradient instead of blending. */
  firstStep: boolean;
}

/**
 * The SGD options that make `sgdUpdate` an in-place add, `p = p + g` with one rounding (lr −1, no
 * momentum, no weight decay): the sums of gradient contributions use it, natively.
 */
export const SGD_ADD: Readonly<SgdOptions> = Object.freeze({
  lr: -1,
  momentum: 0,
  dampening: 0,
  nesterov: false,
  weightDecay: 0,
  firstStep: false,
});

export interface AdamOptions extends GradScaleOption {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** L2 penalty added to the gradient (Adam): g += weightDecay * p. */
  weightDecay: number;
  /** 1-based step number, for bias correction. */
  step: number;
  biasCorrection: boolean;
  amsgrad?: never;
}

export interface AdamwOptions extends GradScaleOption {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Decoupled weight decay (AdamW): p *= 1 - lr * weightDecay before the Adam step. */
  weightDecay: number;
  /** 1-based step number, for bias correction. */
  step: number;
  biasCorrection: boolean;
}

export interface LionOptions extends GradScaleOption {
  lr: number;
  beta1: number;
  beta2: number;
  /** Decoupled weight decay: p *= 1 - lr * weightDecay. */
  weightDecay: number;
}

/** Scalars every implementation (TS and native) derives the same way from the options. */
export interface AdamScalars {
  /** -lr / (1 - beta1^step), as float32. */
  negStepSize: number;
  /** sqrt(1 - beta2^step), as float32. */
  biasCorrection2Sqrt: number;
  /** 1 - beta1, as float32 (the lerp weight of m towards g). */
  oneMinusBeta1: number;
  beta2: number;
  /** 1 - beta2, as float32. */
  oneMinusBeta2: number;
  eps: number;
  /** Adam's L2 coefficient (0 for AdamW). */
  l2: number;
  /** AdamW's decay factor 1 - lr*wd (1 for Adam). */
  decay: number;
}

export function checkSgdArguments(
  params: Float32Array,
  grads: Float32Array,
  momentumBuffer: Float32Array | null,
  o: SgdOptions,
  fp16Out: Uint16Array | null | undefined,
): void {
  const kernel = 'sgdUpdate';
  checkTypedArray(kernel, 'params', params, 'Float32Array');
  checkTypedArray(kernel, 'grads', grads, 'Float32Array');
  checkOptionalTypedArray(kernel, 'momentumBuffer', momentumBuffer, 'Float32Array');
  checkOptionsObject(kernel, 'options', o);
  for (const key of ['lr', 'momentum', 'dampening', 'weightDecay']) checkFiniteOption(kernel, o, key);
  for (const key of ['nesterov', 'firstStep']) checkBooleanOption(kernel, o, key);
  checkGradScaleOption(kernel, o);
  checkOptionalTypedArray(kernel, 'fp16Out', fp16Out, 'Uint16Array');
  const n = params.length;
  checkLength('sgdUpdate', 'grads', grads.length, n, 'params.length');
  if (o.nesterov && (o.momentum <= 0 || o.dampening !== 0)) {
    throw new RangeError(
      `sgdUpdate: Nesterov momentum requires momentum > 0 and dampening 0, got momentum ${o.momentum}, dampening ${o.dampening}`,
    );
  }
  if (o.momentum !== 0) {
    if (momentumBuffer === null || momentumBuffer === undefined) {
      throw new RangeError(
        `sgdUpdate: momentumBuffer is null but momentum is ${o.momentum}; pass a Float32Array of params.length (${n}) elements`,
      );
    }
    checkLength('sgdUpdate', 'momentumBuffer', momentumBuffer.length, n, 'params.length');
  }
  if (fp16Out !== undefined && fp16Out !== null)
    checkLength('sgdUpdate', 'fp16Out', fp16Out.length, n, 'params.length');
}

/**
 * SGD, torch.optim.SGD:
 *   g = grad + wd*p;  buf = firstStep ? g : momentum*buf + (1-dampening)*g;
 *   g = nesterov ? g + momentum*buf : buf;  p -= lr*g
 * momentumBuffer: [n] (may be null when momentum is 0).
 */
export function sgdUpdate(
  params: Float32Array,
  grads: Float32Array,
  momentumBuffer: Float32Array | null,
  o: SgdOptions,
  fp16Out?: Uint16Array,
): void {
  checkSgdArguments(params, grads, momentumBuffer, o, fp16Out);
  fp16Out ??= undefined; // null: no fp16 copy, as in the native kernel
  const negLr = f(-o.lr);
  const wd = f(o.weightDecay);
  const gradScale = f(o.gradScale ?? 1);
  const momentum = f(o.momentum);
  const oneMinusDampening = f(1 - o.dampening);
  const useMomentum = o.momentum !== 0 && momentumBuffer !== null;
  const bitsOut =
    fp16Out === undefined ? undefined : new Uint32Array(params.buffer, params.byteOffset, params.length);
  for (let i = 0; i < params.length; i++) {
    const p = params[i] as number;
    let g = grads[i] as number;
    if (gradScale !== 1) g = f(g * gradScale);
    if (wd !== 0) g = f(g + wd * p);
    if (useMomentum) {
      const buf = o.firstStep ? g : f(f((momentumBuffer[i] as number) * momentum) + oneMinusDampening * g);
      momentumBuffer[i] = buf;
      g = o.nesterov ? f(g + momentum * buf) : buf;
    }
    params[i] = f(p + negLr * g);
    if (fp16Out !== undefined && bitsOut !== undefined) fp16Out[i] = fp32BitsToFp16Bits(bitsOut[i] as number);
  }
}

export function adamScalars(o: AdamOptions | AdamwOptions, decoupled: boolean): AdamScalars {
  const bc1 = o.biasCorrection ? 1 - o.beta1 ** o.step : 1;
  const bc2 = o.biasCorrection ? 1 - o.beta2 ** o.step : 1;
  return {
    negStepSize: f(-(o.lr / bc1)),
    biasCorrection2Sqrt: f(Math.sqrt(bc2)),
    oneMinusBeta1: f(1 - o.beta1),
    beta2: f(o.beta2),
    oneMinusBeta2: f(1 - o.beta2),
    eps: f(o.eps),
    l2: decoupled ? 0 : f(o.weightDecay),
    decay: decoupled ? f(1 - o.lr * o.weightDecay) : 1,
  };
}

/**
 * The shared check of adamUpdate, adamwUpdate (v and the Adam options) and lionUpdate (v null,
 * the Lion options): every array's kind and length and every option, before anything is written.
 */
export function checkAdamArguments(
  kernel: 'adamUpdate' | 'adamwUpdate' | 'lionUpdate',
  params: Float32Array,
  grads: Float32Array,
  m: Float32Array,
  v: Float32Array | null,
  o: AdamOptions | AdamwOptions | LionOptions,
  fp16Out: Uint16Array | null | undefined,
): void {
  checkTypedArray(kernel, 'params', params, 'Float32Array');
  checkTypedArray(kernel, 'grads', grads, 'Float32Array');
  checkTypedArray(kernel, 'm', m, 'Float32Array');
  if (kernel !== 'lionUpdate') checkTypedArray(kernel, 'v', v, 'Float32Array');
  checkOptionsObject(kernel, 'options', o);
  const keys =
    kernel === 'lionUpdate'
      ? ['lr', 'beta1', 'beta2', 'weightDecay']
      : ['lr', 'beta1', 'beta2', 'eps', 'weightDecay'];
  for (const key of keys) checkFiniteOption(kernel, o, key);
  checkGradScaleOption(kernel, o);
  if (kernel !== 'lionUpdate') {
    const step = (o as AdamOptions).step;
    checkFiniteOption(kernel, o, 'step');
    if (!Number.isSafeInteger(step) || step < 1) {
      throw new RangeError(`${kernel}: step is 1-based and must be a positive integer, got ${step}`);
    }
    checkBooleanOption(kernel, o, 'biasCorrection');
  }
  checkOptionalTypedArray(kernel, 'fp16Out', fp16Out, 'Uint16Array');
  const n = params.length;
  checkLength(kernel, 'grads', grads.length, n, 'params.length');
  checkLength(kernel, 'm', m.length, n, 'params.length');
  if (v !== null) checkLength(kernel, 'v', v.length, n, 'params.length');
  if (fp16Out !== undefined && fp16Out !== null)
    checkLength(kernel, 'fp16Out', fp16Out.length, n, 'params.length');
}

// The shared Adam/AdamW loop, in torch's order:
//   p *= decay (AdamW);  g += l2*p (Adam);  m = lerp(m, g, 1-beta1);  v = beta2*v + (1-beta2)*g*g;
//   denom = sqrt(v)/sqrt(bc2) + eps;  p += (-lr/bc1) * m / denom
function adamLoop(
  params: Float32Array,
  grads: Float32Array,
  m: Float32Array,
  v: Float32Array,
  s: AdamScalars,
  gradScale: number,
  fp16Out: Uint16Array | undefined,
): void {
  const bitsOut =
    fp16Out === undefined ? undefined : new Uint32Array(params.buffer, params.byteOffset, params.length);
  for (let i = 0; i < params.length; i++) {
    let p = params[i] as number;
    let g = grads[i] as number;
    if (gradScale !== 1) g = f(g * gradScale);
    if (s.decay !== 1) p = f(p * s.decay);
    if (s.l2 !== 0) g = f(g + s.l2 * p);
    const mi = m[i] as number;
    const mNew = f(mi + s.oneMinusBeta1 * f(g - mi));
    const vNew = f(f((v[i] as number) * s.beta2) + f(f(s.oneMinusBeta2 * g) * g));
    const denom = f(f(f(Math.sqrt(vNew)) / s.biasCorrection2Sqrt) + s.eps);
    m[i] = mNew;
    v[i] = vNew;
    params[i] = f(p + f(f(s.negStepSize * mNew) / denom));
    if (fp16Out !== undefined && bitsOut !== undefined) fp16Out[i] = fp32BitsToFp16Bits(bitsOut[i] as number);
  }
}

/** Adam, torch.optim.Adam (L2 weight decay added to the gradient).  m, v: [n] moments. */
export function adamUpdate(
  params: Float32Array,
  grads: Float32Array,
  m: Float32Array,
  v: Float32Array,
  o: AdamOptions,
  fp16Out?: Uint16Array,
): void {
  checkAdamArguments('adamUpdate', params, grads, m, v, o, fp16Out);
  adamLoop(params, grads, m, v, adamScalars(o, false), f(o.gradScale ?? 1), fp16Out ?? undefined);
}

/** AdamW, torch.optim.AdamW (decoupled decay: p *= 1 - lr*wd, then the Adam step).  m, v: [n]. */
export function adamwUpdate(
  params: Float32Array,
  grads: Float32Array,
  m: Float32Array,
  v: Float32Array,
  o: AdamwOptions,
  fp16Out?: Uint16Array,
): void {
  checkAdamArguments('adamwUpdate', params, grads, m, v, o, fp16Out);
  adamLoop(params, grads, m, v, adamScalars(o, true), f(o.gradScale ?? 1), fp16Out ?? undefined);
}

/**
 * Lion (Chen et al. 2023, as in lucidrains/lion-pytorch):
 *   p *= 1 - lr*wd;  p -= lr * sign(beta1*m + (1-beta1)*g);  m = beta2*m + (1-beta2)*g
 * sign(0) = 0 and sign(NaN) = NaN, like torch.sign.  m: [n].
 */
export function lionUpdate(
  params: Float32Array,
  grads: Float32Array,
  m: Float32Array,
  o: LionOptions,
  fp16Out?: Uint16Array,
): void {
  checkAdamArguments('lionUpdate', params, grads, m, null, o, fp16Out);
  fp16Out ??= undefined; // null: no fp16 copy, as in the native kernel
  const decay = f(1 - o.lr * o.weightDecay);
  const negLr = f(-o.lr);
  const beta1 = f(o.beta1);
  const oneMinusBeta1 = f(1 - o.beta1);
  const beta2 = f(o.beta2);
  const oneMinusBeta2 = f(1 - o.beta2);
  const gradScale = f(o.gradScale ?? 1);
  const bitsOut =
    fp16Out === undefined ? undefined : new Uint32Array(params.buffer, params.byteOffset, params.length);
  for (let i = 0; i < params.length; i++) {
    const g = gradScale === 1 ? (grads[i] as number) : f((grads[i] as number) * gradScale);
    const mi = m[i] as number;
    const blend = f(f(mi * beta1) + oneMinusBeta1 * g);
    const update = blend > 0 ? 1 : blend < 0 ? -1 : blend === 0 ? 0 : Number.NaN;
    params[i] = f(f((params[i] as number) * decay) + negLr * update);
    m[i] = f(f(mi * beta2) + oneMinusBeta2 * g);
    if (fp16Out !== undefined && bitsOut !== undefined) fp16Out[i] = fp32BitsToFp16Bits(bitsOut[i] as number);
  }
}

export function checkSumOfSquaresArguments(x: Float32Array): void {
  checkTypedArray('sumOfSquares', 'x', x, 'Float32Array');
}

/** sum_i x[i]^2 accumulated in float64 (for the global gradient norm).  x: [n]. */
export function sumOfSquares(x: Float32Array): number {
  checkSumOfSquaresArguments(x);
  let sum = 0;
  for (let i = 0; i < x.length; i++) {
    const value = x[i] as number;
    sum += value * value;
  }
  return sum;
}
