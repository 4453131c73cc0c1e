/**
 * What every writer of convert/ checks before writing anything: the config is a valid model config
 * and the weights are exactly its parameters, as finite Float32Arrays of their shapes.
 */
import { CheckpointError } from '../errors';
import { checkWeights } from '../grads';
import { type LlamaConfig, resolveModel } from '../model/config';
import { parameterSpecs } from '../model/parameters';

/** Returns the validated config; throws ConfigError (config) or CheckpointError (weights). */
export function checkModelToWrite(
  config: LlamaConfig,
  weights: ReadonlyMap<string, Float32Array>,
  where: { file?: string; what: string },
): LlamaConfig {
  const checked = resolveModel(config);
  if (!(weights instanceof Map)) {
    const found =
      weights === null
        ? 'null'
        : typeof weights === 'object'
          ? (weights as object).constructor?.name
          : typeof weights;
    throw new CheckpointError(
      `${where.what}: the weights must be a Map of Hugging Face names to Float32Arrays, got ${found}: wrap an object in new Map(Object.entries(weights))`,
      { ...(where.file !== undefined ? { file: where.file } : {}), field: 'weights' },
    );
  }
  checkWeights(checked, weights, where.file !== undefined ? { file: where.file } : {});
  for (const spec of parameterSpecs(checked)) {
    const values = weights.get(spec.name);
    const details = { ...(where.file !== undefined ? { file: where.file } : {}), tensor: spec.name };
    if (!(values instanceof Float32Array)) {
      throw new CheckpointError(
        `${where.what}: tensor '${spec.name}' must be a Float32Array, got ${(values as object)?.constructor?.name ?? typeof values}`,
        details,
      );
    }
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i]!)) {
        throw new CheckpointError(
          `${where.what}: tensor '${spec.name}' holds ${values[i]} at index ${i}: a model to save must be finite (the run diverged, or the weights were damaged); nothing was written`,
          details,
        );
      }
    }
  }
  return checked;
}
