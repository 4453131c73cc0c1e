/**
 * `valueAndGrad`: turns a forward graph with a loss into a training graph whose outputs are the loss
 * and the gradient of every trainable parameter, ready for ane-ir's `partition` and a device's
 * `load`.
 *
 * It extends the graph it is given rather than copying it: the backward ops read the forward's own
 * nodes (those are the saved activations), composite tags keep their ids, `args` and results (the
 * partitioner places calls such as an RMSNorm or an embedding on the host by them, and host kernels
 * read their arguments from them), and node names stay the ones the model was built with. A copy
 * would have to re-create all of that and keep two graphs in step. Build the forward graph for
 * training once and call `valueAndGrad` on it once.
 */
import { type ExecutionTarget, type Graph, isFloatDType, reshape, type Tensor } from 'ane-ir';
import { derive, WEIGHT_GRAD_SUM } from './backward';
import { HEAD_RMSNORM_GRAD } from './composite-rules';
import { AutogradError } from './errors';
import { WEIGHT_GRAD } from './rules';

export interface LossScaleOptions {
  /** The input's name (default `loss_scale`). */
  name?: string;
  /** A bound on the scale the caller promises (for ane-ir's fp16 range checks). */
  maxAbs?: number;
}

export interface ValueAndGradOptions {
  /** The value to differentiate: one element (a mean loss), floating point. */
  loss: Tensor;
  /**
   * Sources to differentiate with respect to (params or inputs). Default: every trainable param the
   * loss reads, in creation order.
   */
  wrt?: readonly Tensor[];
  /**
   * Adds a runtime input shaped like the loss: the gradients are then those of `loss * scale` (loss
   * scaling keeps fp16 gradients from underflowing). The loss output itself is not scaled.
   */
  lossScale?: boolean | LossScaleOptions;
  /** The loss output's name (default `loss`). */
  lossName?: string;
  /**
   * Where the weight gradients (`weight_grad` calls, dW = dY · Xᵀ) should run: 'host' (default:
   * a GEMM over the whole batch accumulates unsafely in fp16, and the optimizer wants fp32) or
   * 'ane'. Returned as `placement`, to pass to `partition`.
   */
  weightGradients?: ExecutionTarget;
  /** Forward values of rank 3 or more: recomputed in the backward (default) or saved. See `GradientsOptions`. */
  highRank?: 'recompute' | 'save';
}

/** A forward value the backward reads, and how. */
export interface SavedValue {
  readonly name: string;
  readonly shape: readonly number[];
  /** 'saved': the backward reads the forward's value; 'recomputed': it rebuilds it. */
  readonly policy: 'saved' | 'recomputed';
}

export interface ValueAndGrad {
  /** The graph given, now with the loss and gradient outputs. */
  readonly graph: Graph;
  readonly loss: Tensor;
  /** The loss-scale input, when one was asked for. */
  readonly lossScale?: Tensor;
  /** The gradient of each `wrt` source, by the source's name (output `grad.<name>`). */
  readonly grads: ReadonlyMap<string, Tensor>;
  /** Output name of each source's gradient, by source name. */
  readonly gradOutputs: ReadonlyMap<string, string>;
  /**
   * Placement overrides for ane-ir's `partition` (`partition(graph, { placement })`): every
   * `weight_grad` call on the target of the `weightGradients` option.
   */
  readonly placement: Readonly<Record<string, ExecutionTarget>>;
  /** Every forward value the backward reads (saved) or rebuilds (recomputed), in creation order. */
  readonly activations: readonly SavedValue[];
}

/** The output name a source's gradient travels under: `grad.<name>`. */
export function gradOutputName(source: Tensor | string): string {
  return `grad.${typeof source === 'string' ? source : source.name}`;
}

/** Trainable params `loss` reads, in creation order. */
export function trainableParams(loss: Tensor): Tensor[] {
  const seen = new Set<Tensor>();
  const stack = [loss];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (seen.has(node)) continue;
    seen.add(node);
    stack.push(...node.inputs);
  }
  return [...seen]
    .filter((node) => node.op.kind === 'param' && node.op.trainable)
    .sort((a, b) => a.id - b.id);
}

/**
 * Appends the backward pass of `loss` to its graph and declares the outputs: the loss (as `loss`)
 * and `grad.<name>` for every `wrt` source. Gradients of a value read several times are summed.
 */
export function valueAndGrad(graph: Graph, options: ValueAndGradOptions): ValueAndGrad {
  const { loss } = options;
  const lossName = options.lossName ?? 'loss';
  if (loss.graph !== graph) {
    throw new AutogradError(
      `valueAndGrad: the loss '${loss.name}' belongs to another graph than the one given`,
    );
  }
  if (loss.size !== 1 || !isFloatDType(loss.dtype)) {
    throw new AutogradError(
      `valueAndGrad: the loss '${loss.name}' must be one floating-point value, found ${loss.dtype}[${loss.shape.join(', ')}]; reduce it to a scalar (e.g. a mean) first`,
    );
  }
  const wrt = options.wrt ?? trainableParams(loss);
  if (wrt.length === 0) {
    throw new AutogradError(
      `valueAndGrad: the loss '${loss.name}' reads no trainable param; pass wrt to name the sources to differentiate`,
    );
  }
  for (const source of wrt) {
    if (source.op.kind !== 'param' && source.op.kind !== 'input') {
      throw new AutogradError(
        `valueAndGrad: wrt '${source.name}' is a ${source.op.kind} node; differentiate with respect to params or inputs`,
      );
    }
    if (!isFloatDType(source.dtype)) {
      throw new AutogradError(
        `valueAndGrad: wrt '${source.name}' is ${source.dtype}; only floating-point sources have gradients`,
      );
    }
  }
  const declared = new Set(graph.outputs.map((o) => o.name));
  const existingLoss = graph.outputs.find((o) => o.name === lossName);
  if (existingLoss !== undefined && existingLoss.tensor !== loss) {
    throw new AutogradError(
      `valueAndGrad: the graph already has an output '${lossName}' that is not the loss; pass lossName to choose another name`,
    );
  }
  for (const source of wrt) {
    if (declared.has(gradOutputName(source))) {
      throw new AutogradError(
        `valueAndGrad: the graph already has an output '${gradOutputName(source)}' (was valueAndGrad called on it before?); build the forward graph anew for each call`,
      );
    }
  }

  let lossScale: Tensor | undefined;
  if (options.lossScale) {
    const scaleOptions = options.lossScale === true ? {} : options.lossScale;
    lossScale = graph.unscoped(() =>
      graph.input(scaleOptions.name ?? 'loss_scale', loss.shape, {
        dtype: loss.dtype,
        ...(scaleOptions.maxAbs !== undefined ? { maxAbs: scaleOptions.maxAbs } : {}),
      }),
    );
  }

  const firstBackwardNode = graph.nodes.length;
  const { grads: derived, recomputed } = derive(loss, wrt, {
    ...(lossScale !== undefined ? { seed: lossScale } : {}),
    ...(options.highRank !== undefined ? { highRank: options.highRank } : {}),
  });
  const placement: Record<string, ExecutionTarget> = {};
  for (const node of graph.nodes.slice(firstBackwardNode)) {
    for (const tag of node.composites) {
      // A weight's gradient contributions are summed where they are computed.
      if (tag.kind === WEIGHT_GRAD || tag.kind === WEIGHT_GRAD_SUM)
        placement[tag.name] = options.weightGradients ?? 'host';
      // A per-head RMSNorm's dx reads r [H, S] beside [H·HD, S] values, which share no axis a
      // packed kernel input can use: it runs on the host (ane-bridge: per-head rmsnormBackward).
      if (tag.kind === HEAD_RMSNORM_GRAD) placement[tag.name] = 'host';
    }
  }
  if (existingLoss === undefined) graph.output(lossName, loss);
  const outputTensors = new Set(graph.outputs.map((o) => o.tensor));
  const grads = new Map<string, Tensor>();
  const gradOutputs = new Map<string, string>();
  wrt.forEach((source, i) => {
    let gradient = derived[i]!;
    // One tensor, one output name: a gradient that is already an output (two sources sharing dy)
    // or a source itself gets its own identity node.
    if (outputTensors.has(gradient) || ['input', 'param', 'constant'].includes(gradient.op.kind)) {
      gradient = graph.unscoped(() =>
        graph.scope(`${source.name}.grad`, () => reshape(gradient, gradient.shape, { name: 'out' })),
      );
    }
    const name = gradOutputName(source);
    graph.output(name, gradient);
    outputTensors.add(gradient);
    grads.set(source.name, gradient);
    gradOutputs.set(source.name, name);
  });
  return {
    graph,
    loss,
    ...(lossScale !== undefined ? { lossScale } : {}),
    grads,
    gradOutputs,
    placement,
    activations: activationReport(graph, firstBackwardNode, recomputed),
  };
}

/** The forward values (op results, not sources) the live backward reads, and those it rebuilt. */
function activationReport(
  graph: Graph,
  firstBackwardNode: number,
  recomputed: ReadonlyMap<Tensor, Tensor>,
): SavedValue[] {
  // Backward nodes the outputs need (copies no rule read stay dead and are not reported).
  const live = new Set<Tensor>();
  const stack = graph.outputs.map((o) => o.tensor);
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (live.has(node) || node.id < firstBackwardNode) continue;
    live.add(node);
    stack.push(...node.inputs);
  }
  const copies = new Map([...recomputed].map(([original, copy]) => [copy, original] as const));
  const report = new Map<Tensor, SavedValue>();
  for (const node of live) {
    const original = copies.get(node);
    if (original !== undefined) {
      report.set(original, { name: original.name, shape: original.shape, policy: 'recomputed' });
    }
    for (const input of node.inputs) {
      const kind = input.op.kind;
      if (input.id >= firstBackwardNode || kind === 'input' || kind === 'param' || kind === 'constant')
        continue;
      if (!report.has(input)) report.set(input, { name: input.name, shape: input.shape, policy: 'saved' });
    }
  }
  return [...report.entries()].sort(([a], [b]) => a.id - b.id).map(([, value]) => value);
}
