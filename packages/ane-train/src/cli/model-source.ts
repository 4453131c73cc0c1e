/**
 * Where a command's weights come from: an ane-train checkpoint (`.safetensors`), a training run's
 * directory (its `checkpoints/latest.safetensors`), a Hugging Face model directory (`config.json` +
 * `model.safetensors`), or a llama2.c checkpoint (`.bin`, e.g. stories15M.bin).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Checkpoint, loadCheckpoint } from '../checkpoint';
import { importHuggingFace, readLlama2cCheckpoint } from '../convert';
import { CheckpointError } from '../errors';
import type { LlamaConfig } from '../model/config';

export interface ModelSource {
  kind: 'checkpoint' | 'run' | 'huggingface' | 'llama2c';
  /** The file the weights were read from. */
  file: string;
  config: LlamaConfig;
  weights: Map<string, Float32Array>;
  /** The whole checkpoint (kind 'checkpoint' or 'run'). */
  checkpoint?: Checkpoint;
  /** The tokenizer the weights were trained with, when the source records it. */
  tokenizer?: string;
}

/** A run directory's latest checkpoint. */
export function latestCheckpointOf(runDir: string): string {
  return join(runDir, 'checkpoints', 'latest.safetensors');
}

/** Reads weights and config from `path` (see the module comment); CheckpointError naming it when it is none of them. */
export async function loadModelSource(path: string): Promise<ModelSource> {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch {
    throw new CheckpointError(
      `${path} does not exist: give an ane-train checkpoint (.safetensors), a run directory, a Hugging Face model directory or a llama2.c .bin`,
      { file: path },
    );
  }
  if (stat.isDirectory()) {
    const latest = latestCheckpointOf(path);
    if (existsSync(latest)) return fromCheckpoint(latest, 'run');
    if (existsSync(join(path, 'config.json'))) {
      const model = await importHuggingFace(path);
      return { kind: 'huggingface', file: path, ...model };
    }
    throw new CheckpointError(
      `${path} is a directory with neither checkpoints/latest.safetensors (an ane-train run) nor config.json (a Hugging Face model): give a checkpoint file, a run directory or a model directory`,
      { file: path },
    );
  }
  if (path.endsWith('.bin')) {
    const model = await readLlama2cCheckpoint(path);
    return { kind: 'llama2c', file: path, ...model };
  }
  return fromCheckpoint(path, 'checkpoint');
}

async function fromCheckpoint(file: string, kind: 'checkpoint' | 'run'): Promise<ModelSource> {
  const checkpoint = await loadCheckpoint(file);
  const tokenizer = checkpoint.metadata?.tokenizer;
  return {
    kind,
    file,
    config: checkpoint.config,
    weights: checkpoint.weights,
    checkpoint,
    ...(tokenizer !== undefined ? { tokenizer } : {}),
  };
}

/** The tokenizer to use with a model of `vocabSize` when none is named: bytes for 256, Llama-2's for 32000. */
export function defaultTokenizerFor(vocabSize: number): 'byte' | 'llama2' | undefined {
  if (vocabSize === 256) return 'byte';
  if (vocabSize === 32000) return 'llama2';
  return undefined;
}
