/**
 * `ane bench`: one standard program, timed on a device. The program is a Stories15M-sized
 * transformer layer forward (dim 288, 6 heads, FFN 768, 256 tokens; the same layer as
 * bench/programs/stories-layer.mjs): RMSNorm, Q/K/V/O as 1x1 convs, causal attention as matmul +
 * scale + additive mask + softmax, SwiGLU FFN, residuals, random constant weights in blob files.
 */
import { encodeFp16, type Program, writeBlobFile } from 'ane-ir/mil';
import type { Device } from '../device/device';

const HEADER =
  'program(1.3)\n[buildInfo = dict<string, string>({{"coremlc-component-MIL", "3510.2.1"}, {"coremlc-version", "3505.4.1"}, {"coremltools-component-milinternal", ""}, {"coremltools-version", "9.0"}})]\n{\n';

export interface LayerConfig {
  dim: number;
  heads: number;
  hidden: number;
  seq: number;
}

export const STORIES15M_LAYER: LayerConfig = { dim: 288, heads: 6, hidden: 768, seq: 256 };

/** Deterministic uniform values in [-scale, scale] as fp16 bits (a 32-bit LCG). */
function randomFp16(count: number, scale: number, seed: number): Uint16Array {
  let state = seed >>> 0;
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    values[i] = ((state / 2 ** 32) * 2 - 1) * scale;
  }
  return encodeFp16(values);
}

export interface BenchProgram {
  program: Program;
  /** Floating-point operations of one run (multiply-adds count 2). */
  flops: number;
  /** The input as fp16 bits. */
  input: Uint16Array;
}

export function storiesLayerProgram(config: LayerConfig = STORIES15M_LAYER): BenchProgram {
  const { dim, heads, hidden, seq } = config;
  const headDim = dim / heads;
  const weights = new Map<string, Uint8Array>();
  const t = (shape: readonly number[]) => `tensor<fp16, [${shape.join(',')}]>`;
  const blob = (name: string, shape: readonly number[], data: Uint16Array) => {
    const path = `@model_path/weights/${name}.bin`;
    weights.set(path, writeBlobFile([{ dtype: 'fp16', data }]).bytes);
    return `        ${t(shape)} ${name} = const()[name=string("${name}"), val=${t(shape)}(BLOBFILE(path=string("${path}"), offset=uint64(64)))];`;
  };
  const matrix = (name: string, out: number, inp: number, seed: number) =>
    blob(name, [out, inp, 1, 1], randomFp16(out * inp, 1 / Math.sqrt(inp), seed));
  const mask = new Float32Array(seq * seq);
  for (let i = 0; i < seq; i++) for (let j = i + 1; j < seq; j++) mask[i * seq + j] = -65504;
  const X = [1, dim, 1, seq];
  const H = [1, hidden, 1, seq];
  const row = [1, 1, 1, seq];
  const heads4 = [1, heads, headDim, seq];
  const headsT = [1, heads, seq, headDim];
  const scores = [1, heads, seq, seq];
  const conv = (out: string, w: string, x: string, shape: readonly number[]) =>
    `        ${t(shape)} ${out} = conv(dilations=dl,groups=gr,pad=pd,pad_type=pt,strides=st,weight=${w},x=${x})[name=string("${out}")];`;
  const rmsnorm = (p: string, x: string, gain: string) => [
    `        ${t(X)} ${p}_sq = mul(x=${x},y=${x})[name=string("${p}_sq")];`,
    `        ${t(row)} ${p}_ss = reduce_sum(x=${p}_sq,axes=rax,keep_dims=kd)[name=string("${p}_ss")];`,
    `        ${t(row)} ${p}_ms = mul(x=${p}_ss,y=invd)[name=string("${p}_ms")];`,
    `        ${t(row)} ${p}_me = add(x=${p}_ms,y=eps)[name=string("${p}_me")];`,
    `        ${t(row)} ${p}_r = pow(x=${p}_me,y=nhalf)[name=string("${p}_r")];`,
    `        ${t(X)} ${p}_xr = mul(x=${x},y=${p}_r)[name=string("${p}_xr")];`,
    `        ${t(X)} ${p}_out = mul(x=${p}_xr,y=${gain})[name=string("${p}_out")];`,
  ];
  const body = [
    `        string pt = const()[name=string("pt"), val=string("valid")];`,
    `        tensor<int32, [2]> st = const()[name=string("st"), val=tensor<int32, [2]>([1,1])];`,
    `        tensor<int32, [4]> pd = const()[name=string("pd"), val=tensor<int32, [4]>([0,0,0,0])];`,
    `        tensor<int32, [2]> dl = const()[name=string("dl"), val=tensor<int32, [2]>([1,1])];`,
    `        int32 gr = const()[name=string("gr"), val=int32(1)];`,
    `        tensor<int32, [1]> rax = const()[name=string("rax"), val=tensor<int32, [1]>([1])];`,
    `        bool kd = const()[name=string("kd"), val=bool(true)];`,
    `        fp16 invd = const()[name=string("invd"), val=fp16(${1 / dim})];`,
    `        fp16 eps = const()[name=string("eps"), val=fp16(0.00001)];`,
    `        fp16 nhalf = const()[name=string("nhalf"), val=fp16(-0.5)];`,
    `        bool bF = const()[name=string("bF"), val=bool(false)];`,
    `        bool bT = const()[name=string("bT"), val=bool(true)];`,
    `        tensor<int32, [4]> hsh = const()[name=string("hsh"), val=tensor<int32, [4]>([${heads4.join(',')}])];`,
    `        tensor<int32, [4]> fsh = const()[name=string("fsh"), val=tensor<int32, [4]>([${X.join(',')}])];`,
    `        tensor<int32, [4]> pm = const()[name=string("pm"), val=tensor<int32, [4]>([0,1,3,2])];`,
    `        fp16 scv = const()[name=string("scv"), val=fp16(${1 / Math.sqrt(headDim)})];`,
    `        int32 sax = const()[name=string("sax"), val=int32(-1)];`,
    blob('g1', [1, dim, 1, 1], randomFp16(dim, 1, 11)),
    blob('g2', [1, dim, 1, 1], randomFp16(dim, 1, 12)),
    matrix('Wq', dim, dim, 1),
    matrix('Wk', dim, dim, 2),
    matrix('Wv', dim, dim, 3),
    matrix('Wo', dim, dim, 4),
    matrix('W1', hidden, dim, 5),
    matrix('W3', hidden, dim, 6),
    matrix('W2', dim, hidden, 7),
    blob('cm', [1, 1, seq, seq], encodeFp16(mask)),
    ...rmsnorm('n1', 'x', 'g1'),
    conv('q', 'Wq', 'n1_out', X),
    conv('k', 'Wk', 'n1_out', X),
    conv('v', 'Wv', 'n1_out', X),
    ...['q', 'k', 'v'].flatMap((n) => [
      `        ${t(heads4)} ${n}h = reshape(shape=hsh,x=${n})[name=string("${n}h")];`,
      `        ${t(headsT)} ${n}t = transpose(perm=pm,x=${n}h)[name=string("${n}t")];`,
    ]),
    `        ${t(scores)} sc = matmul(transpose_x=bF,transpose_y=bT,x=qt,y=kt)[name=string("sc")];`,
    `        ${t(scores)} scs = mul(x=sc,y=scv)[name=string("scs")];`,
    `        ${t(scores)} scm = add(x=scs,y=cm)[name=string("scm")];`,
    `        ${t(scores)} pr = softmax(axis=sax,x=scm)[name=string("pr")];`,
    `        ${t(headsT)} at = matmul(transpose_x=bF,transpose_y=bF,x=pr,y=vt)[name=string("at")];`,
    `        ${t(heads4)} ath = transpose(perm=pm,x=at)[name=string("ath")];`,
    `        ${t(X)} atf = reshape(shape=fsh,x=ath)[name=string("atf")];`,
    conv('o', 'Wo', 'atf', X),
    `        ${t(X)} h = add(x=x,y=o)[name=string("h")];`,
    ...rmsnorm('n2', 'h', 'g2'),
    conv('f1', 'W1', 'n2_out', H),
    conv('f3', 'W3', 'n2_out', H),
    `        ${t(H)} sg = sigmoid(x=f1)[name=string("sg")];`,
    `        ${t(H)} si = mul(x=f1,y=sg)[name=string("si")];`,
    `        ${t(H)} gt = mul(x=si,y=f3)[name=string("gt")];`,
    conv('f2', 'W2', 'gt', X),
    `        ${t(X)} out = add(x=h,y=f2)[name=string("out")];`,
  ];
  const mil = `${HEADER}    func main<ios18>(${t(X)} x) {\n${body.join('\n')}\n    } -> (out);\n}\n`;
  const flops = 2 * seq * (4 * dim * dim + 3 * dim * hidden) + 2 * 2 * heads * seq * seq * headDim;
  return {
    program: {
      mil,
      weights,
      inputs: [{ name: 'x', dtype: 'fp16', shape: X }],
      outputs: [{ name: 'out', dtype: 'fp16', shape: X }],
    },
    flops,
    input: randomFp16(dim * seq, 1, 99),
  };
}

export interface BenchResult {
  benchmark: 'stories15m-layer-forward';
  backend: string;
  chip: string;
  config: LayerConfig;
  flops: number;
  compileMs: number;
  iterations: number;
  /** Per run, in milliseconds. */
  runMs: { median: number; min: number; max: number };
  /** flops / median run time. */
  gflops: number;
}

/** Compiles the layer once, runs it `warmup` + `iterations` times (`Kernel.run`), and times the runs. */
export async function runBench(
  device: Device,
  options: { iterations?: number; warmup?: number; config?: LayerConfig } = {},
): Promise<BenchResult> {
  const iterations = options.iterations ?? 10;
  const warmup = options.warmup ?? 1;
  if (!Number.isInteger(iterations) || iterations < 1)
    throw new RangeError(`iterations must be ≥ 1, got ${iterations}`);
  const config = options.config ?? STORIES15M_LAYER;
  const { program, flops, input } = storiesLayerProgram(config);
  const compileStart = performance.now();
  using kernel = device.compile(program);
  const compileMs = performance.now() - compileStart;
  kernel.inputs[0]!.write(input);
  for (let i = 0; i < warmup; i++) await kernel.run();
  const times: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const start = performance.now();
    await kernel.run();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const median =
    times.length % 2 === 1
      ? times[(times.length - 1) / 2]!
      : (times[times.length / 2 - 1]! + times[times.length / 2]!) / 2;
  return {
    benchmark: 'stories15m-layer-forward',
    backend: device.backend,
    chip: device.chip,
    config,
    flops,
    compileMs,
    iterations,
    runMs: { median, min: times[0]!, max: times.at(-1)! },
    gflops: flops / (median * 1e6),
  };
}

export function formatBench(result: BenchResult): string {
  const { dim, heads, hidden, seq } = result.config;
  return [
    `ane bench: Stories15M layer forward (dim ${dim}, ${heads} heads, FFN ${hidden}, ${seq} tokens) on ${result.backend} (${result.chip})`,
    `  work      ${(result.flops / 1e9).toFixed(3)} GFLOP per run`,
    `  compile   ${result.compileMs.toFixed(1)} ms`,
    `  run       median ${result.runMs.median.toFixed(2)} ms, min ${result.runMs.min.toFixed(2)} ms, max ${result.runMs.max.toFixed(2)} ms over ${result.iterations} runs`,
    `  speed     ${result.gflops.toFixed(2)} GFLOP/s`,
    '',
  ].join('\n');
}
