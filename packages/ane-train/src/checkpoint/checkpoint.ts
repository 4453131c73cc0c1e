/**
 * Checkpoints: one safetensors file holding everything a run needs to continue.
 *
 *   tensors        the weights under their Hugging Face names (F32, the model's shapes), and the
 *                  optimizer state as `optimizer/<parameter>/<field>` (F32, the parameter's shape;
 *                  e.g. `optimizer/model.norm.weight/m`)
 *   __metadata__   format 'ane-train/checkpoint', version '1', config (the LlamaConfig, JSON),
 *                  trainer (the TrainerState without its buffers, JSON), data (e.g. a BatchSampler's
 *                  state, JSON), checksum, and any free-form strings the writer added
 *
 * The checksum is 'sha256:<hex>' of the whole file with the 64 hex digits themselves read as '0's:
 * a changed byte anywhere (header or data) is found. Writing is atomic (a temporary file in the same
 * directory, fsync, rename, fsync of the directory) and streams the tensors from their arrays in
 * pieces (saveTrainerCheckpoint, between fit calls, from the Trainer's live arrays), so a large
 * model is never held twice in memory; a `kill -9` at any moment leaves the previous checkpoint
 * whole. Loading reads tensor by tensor (no file-sized buffer: a checkpoint past Node's 4 GiB
 * buffer limit loads) and checks the structure, the format, the checksum, the config, every
 * parameter's and optimizer buffer's name, dtype and shape, and throws a CheckpointError naming the
 * file and the tensor or field; a failed load or save never changes a file.
 */
import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { LossScalerState, OptimizerStateMeta } from 'ane-optim';
import { CheckpointError, ConfigError, TrainError } from '../errors';
import { openRegularFile, readExactly, writeFileAtomically } from '../io/files';
import { parseSafetensorsHeader, type SafetensorsDType, safetensorsHeaderLength } from '../io/safetensors';
import { type LlamaConfig, parseLlamaConfig } from '../model/config';
import { type ParameterSpec, parameterSpecs } from '../model/parameters';
import { Trainer, type TrainerState } from '../trainer';

export const CHECKPOINT_FORMAT = 'ane-train/checkpoint';
export const CHECKPOINT_VERSION = 1;

export interface Checkpoint {
  config: LlamaConfig;
  /** Every parameter by Hugging Face name, fp32. */
  weights: Map<string, Float32Array>;
  /** Step, seed, optimizer and loss-scaler state; absent in a weights-only checkpoint. */
  trainer?: TrainerState;
  /** JSON-serializable data position (e.g. `BatchSampler.state()`), stored as JSON. */
  data?: unknown;
  /** Free-form strings (e.g. the tokenizer's name); the reserved keys are refused. */
  metadata?: Record<string, string>;
}

export interface LoadCheckpointOptions {
  /** The config the checkpoint must have: a difference is a CheckpointError naming the field. */
  config?: LlamaConfig;
}

/** `__metadata__` keys the checkpoint itself uses. */
const RESERVED = ['format', 'version', 'config', 'trainer', 'data', 'checksum'] as const;
const OPTIMIZER_PREFIX = 'optimizer/';
const CHECKSUM_PREFIX = 'sha256:';
const HEX_DIGITS = 64;
/** Bytes handed to one write call (a large tensor goes in pieces). */
const WRITE_CHUNK = 16 * 1024 * 1024;

/** The stored form of the trainer state: the TrainerState without the optimizer's buffers. */
interface StoredTrainerState {
  step: number;
  seed: number;
  optimizer: OptimizerStateMeta;
  lossScaler: LossScalerState | null;
}

interface TensorToWrite {
  name: string;
  shape: readonly number[];
  values: Float32Array;
}

function fail(
  file: string | undefined,
  message: string,
  details: { tensor?: string; field?: string } = {},
): never {
  const prefix = file !== undefined ? `checkpoint ${file}` : 'checkpoint';
  throw new CheckpointError(`${prefix}: ${message}`, { ...(file !== undefined ? { file } : {}), ...details });
}

const elementsOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);
const shapeText = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/** Checks a config object (a LlamaConfig or anything parseLlamaConfig takes) and returns it resolved. */
function checkedConfig(config: unknown, file: string | undefined, what: string): LlamaConfig {
  try {
    return parseLlamaConfig(config);
  } catch (error) {
    if (error instanceof ConfigError) {
      fail(file, `${what}: ${error.message}`, { field: `config.${error.field ?? ''}` });
    }
    throw error;
  }
}

/** The first field in which two configs differ, with both values; undefined when equal. */
function configDifference(
  a: LlamaConfig,
  b: LlamaConfig,
): { field: string; a: unknown; b: unknown } | undefined {
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])] as (keyof LlamaConfig)[];
  for (const field of keys) {
    if (a[field] !== b[field]) return { field, a: a[field], b: b[field] };
  }
  return undefined;
}

/** The tensors of `checkpoint`, checked against its config, in file order (name order). */
function tensorsToWrite(
  checkpoint: Checkpoint,
  specs: readonly ParameterSpec[],
  file: string,
  /** The optimizer's buffers, one per meta.buffers entry, when not in `optimizer.data`. */
  optimizerBuffers: Float32Array[] | undefined,
): TensorToWrite[] {
  const { weights } = checkpoint;
  if (!(weights instanceof Map)) {
    fail(file, `weights must be a Map from Hugging Face name to Float32Array, got ${describe(weights)}`, {
      field: 'weights',
    });
  }
  const out: TensorToWrite[] = [];
  for (const spec of specs) {
    const values = weights.get(spec.name);
    const size = elementsOf(spec.shape);
    if (!(values instanceof Float32Array) || values.length !== size) {
      fail(
        file,
        `weight '${spec.name}' ${values === undefined ? 'is missing' : `must be a Float32Array of ${size} values (shape ${shapeText(spec.shape)}), got ${values instanceof Float32Array ? `${values.length} values` : describe(values)}`}: the weights do not fit the config`,
        { tensor: spec.name },
      );
    }
    out.push({ name: spec.name, shape: spec.shape, values });
  }
  const known = new Set(specs.map((spec) => spec.name));
  for (const name of weights.keys()) {
    if (!known.has(name)) {
      fail(file, `weight '${name}' is not a parameter of the config's model (its names are Hugging Face's)`, {
        tensor: name,
      });
    }
  }
  const trainer = checkpoint.trainer;
  if (trainer !== undefined) {
    if (trainer === null || typeof trainer !== 'object') {
      fail(file, `trainer must be a TrainerState from Trainer.saveState(), got ${describe(trainer)}`, {
        field: 'trainer',
      });
    }
    for (const field of ['step', 'seed'] as const) {
      if (!Number.isSafeInteger(trainer[field]) || trainer[field] < 0) {
        fail(file, `trainer.${field} must be a whole number ≥ 0, got ${String(trainer[field])}`, {
          field: 'trainer',
        });
      }
    }
    const optimizer = trainer.optimizer;
    if (
      optimizer === null ||
      typeof optimizer !== 'object' ||
      !(optimizer.data instanceof Float32Array || optimizerBuffers !== undefined) ||
      optimizer.meta === null ||
      typeof optimizer.meta !== 'object' ||
      !Array.isArray(optimizer.meta.tensors) ||
      !Array.isArray(optimizer.meta.buffers)
    ) {
      fail(file, `trainer.optimizer must be an OptimizerState { meta, data } from Trainer.saveState()`, {
        field: 'trainer',
      });
    }
    const shapes = new Map(specs.map((spec) => [spec.name, spec.shape]));
    for (const [index, entry] of optimizer.meta.buffers.entries()) {
      const shape = shapes.get(entry.tensor);
      if (shape === undefined || entry.length !== elementsOf(shape)) {
        fail(
          file,
          `the optimizer's '${entry.field}' buffer of '${entry.tensor}' (${entry.length} values) does not fit ${shape === undefined ? 'any parameter of the model' : `the parameter's shape ${shapeText(shape)}`}`,
          { tensor: `${OPTIMIZER_PREFIX}${entry.tensor}/${entry.field}` },
        );
      }
      const values =
        optimizerBuffers !== undefined
          ? optimizerBuffers[index]
          : entry.offset + entry.length <= optimizer.data.length
            ? optimizer.data.subarray(entry.offset, entry.offset + entry.length)
            : undefined;
      if (!(values instanceof Float32Array) || values.length !== entry.length) {
        fail(file, `the optimizer's '${entry.field}' buffer of '${entry.tensor}' runs past its data`, {
          tensor: `${OPTIMIZER_PREFIX}${entry.tensor}/${entry.field}`,
        });
      }
      out.push({ name: `${OPTIMIZER_PREFIX}${entry.tensor}/${entry.field}`, shape, values });
    }
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function describe(value: unknown): string {
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : `a ${value.constructor?.name ?? 'object'}`;
}

/** The `__metadata__` strings of `checkpoint` (checksum left as zeros, filled in after the data). */
function metadataOf(checkpoint: Checkpoint, config: LlamaConfig, file: string): Record<string, string> {
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    version: String(CHECKPOINT_VERSION),
    config: JSON.stringify(config),
  };
  if (checkpoint.trainer !== undefined) {
    const { step, seed, optimizer, lossScaler } = checkpoint.trainer;
    const stored: StoredTrainerState = { step, seed, optimizer: optimizer.meta, lossScaler };
    metadata.trainer = JSON.stringify(stored);
  }
  if (checkpoint.data !== undefined) {
    let text: string | undefined;
    try {
      // JSON writes NaN and ±Infinity as null: refuse them rather than load back something else.
      text = JSON.stringify(checkpoint.data, (key, value) => {
        if (typeof value === 'number' && !Number.isFinite(value)) {
          throw new Error(`${key === '' ? 'the data' : `'${key}'`} is ${value}, which JSON stores as null`);
        }
        return value;
      });
    } catch (error) {
      fail(file, `data must be JSON-serializable (${(error as Error).message})`, { field: 'data' });
    }
    if (text === undefined)
      fail(file, `data must be JSON-serializable, got ${typeof checkpoint.data}`, { field: 'data' });
    metadata.data = text;
  }
  const extra = checkpoint.metadata ?? {};
  if (extra === null || typeof extra !== 'object') {
    fail(file, `metadata must be an object of strings, got ${describe(extra)}`, { field: 'metadata' });
  }
  for (const [key, value] of Object.entries(extra)) {
    if ((RESERVED as readonly string[]).includes(key)) {
      fail(file, `metadata key '${key}' is reserved (${RESERVED.join(', ')}): choose another name`, {
        field: `metadata.${key}`,
      });
    }
    if (typeof value !== 'string') {
      fail(file, `metadata '${key}' must be a string, got ${typeof value}`, { field: `metadata.${key}` });
    }
    metadata[key] = value;
  }
  metadata.checksum = CHECKSUM_PREFIX + '0'.repeat(HEX_DIGITS);
  return metadata;
}

/**
 * Writes `checkpoint` to `path` atomically (see the module comment). Everything is checked first:
 * weights that do not fit the config, an optimizer state that does not fit the weights, reserved or
 * non-string metadata are CheckpointErrors, and the file at `path` is left as it was. Do not change
 * the arrays while the promise is pending (`saveTrainerCheckpoint` copies them first).
 */
export async function saveCheckpoint(path: string, checkpoint: Checkpoint): Promise<void> {
  await writeCheckpoint(path, checkpoint, undefined);
}

/** saveCheckpoint, with the optimizer's buffers given one by one (views) instead of in `data`. */
async function writeCheckpoint(
  path: string,
  checkpoint: Checkpoint,
  optimizerBuffers: Float32Array[] | undefined,
): Promise<void> {
  if (typeof path !== 'string' || path === '') {
    fail(undefined, `saveCheckpoint(path, checkpoint): path must be a file path, got ${describe(path)}`, {
      field: 'path',
    });
  }
  if (checkpoint === null || typeof checkpoint !== 'object') {
    fail(path, `saveCheckpoint: checkpoint must be { config, weights, trainer?, data?, metadata? }`, {
      field: 'checkpoint',
    });
  }
  const config = checkedConfig(checkpoint.config, path, 'config');
  const tensors = tensorsToWrite(checkpoint, parameterSpecs(config), path, optimizerBuffers);
  const metadata = metadataOf(checkpoint, config, path);

  // The header: __metadata__ first, then the tensors in name order, back to back.
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const tensor of tensors) {
    header[tensor.name] = {
      dtype: 'F32',
      shape: [...tensor.shape],
      data_offsets: [offset, offset + tensor.values.byteLength],
    };
    offset += tensor.values.byteLength;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const headerLength = Math.ceil(json.length / 8) * 8; // every tensor starts 8-byte aligned
  const head = Buffer.alloc(8 + headerLength, 0x20);
  head.writeBigUInt64LE(BigInt(headerLength), 0);
  json.copy(head, 8);
  const checksumAt = checksumOffset(head);
  if (checksumAt === undefined) throw new Error('saveCheckpoint: the checksum placeholder is missing');

  await writeFileAtomically(
    path,
    async (handle) => {
      const hash = createHash('sha256');
      let position = 0;
      position = await writeAll(handle, head, position, hash);
      for (const tensor of tensors) {
        const bytes = new Uint8Array(
          tensor.values.buffer,
          tensor.values.byteOffset,
          tensor.values.byteLength,
        );
        for (let start = 0; start < bytes.length; start += WRITE_CHUNK) {
          position = await writeAll(handle, bytes.subarray(start, start + WRITE_CHUNK), position, hash);
        }
      }
      const digest = Buffer.from(hash.digest('hex'), 'ascii');
      await writeAll(handle, digest, checksumAt, undefined);
    },
    (why) =>
      fail(
        path,
        `cannot be written (${why}): check the directory exists and is writable; nothing was written`,
        {
          field: 'file',
        },
      ),
  );
}

/** Writes all of `bytes` at `position` (looping over short writes); feeds them to `hash`. */
async function writeAll(
  handle: FileHandle,
  bytes: Uint8Array,
  position: number,
  hash: Hash | undefined,
): Promise<number> {
  hash?.update(bytes);
  let done = 0;
  while (done < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
  return position + bytes.length;
}

/** The byte offset of the checksum's hex digits in a file's first bytes (the header), if present. */
function checksumOffset(bytes: Uint8Array): number | undefined {
  const pattern = Buffer.from(`"checksum":"${CHECKSUM_PREFIX}`, 'ascii');
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = view.indexOf(pattern);
  if (at < 0 || at + pattern.length + HEX_DIGITS > bytes.length) return undefined;
  return at + pattern.length;
}

function parseJson(file: string, metadata: Record<string, string>, key: string): unknown {
  try {
    return JSON.parse(metadata[key]!);
  } catch (error) {
    fail(file, `__metadata__.${key} is not valid JSON (${(error as Error).message}): the file is corrupted`, {
      field: key,
    });
  }
}

/** A tensor as read from the file: F32 data as fp32 values, any other dtype as its raw bytes. */
interface StoredTensor {
  dtype: SafetensorsDType;
  shape: number[];
  values: Float32Array | Uint8Array;
}

function checkTensor(
  file: string,
  tensors: Map<string, StoredTensor>,
  name: string,
  shape: readonly number[],
  what: string,
): Float32Array {
  const tensor = tensors.get(name);
  if (tensor === undefined) {
    fail(file, `${what} '${name}' is missing: the checkpoint is incomplete or of another model`, {
      tensor: name,
    });
  }
  if (tensor.dtype !== 'F32') {
    fail(
      file,
      `${what} '${name}' is ${tensor.dtype}, expected F32: a checkpoint keeps fp32 master weights and state`,
      {
        tensor: name,
        field: 'dtype',
      },
    );
  }
  if (tensor.shape.join(',') !== shape.join(',')) {
    fail(
      file,
      `${what} '${name}' has shape ${shapeText(tensor.shape)}, expected ${shapeText(shape)} for the checkpoint's config`,
      { tensor: name, field: 'shape' },
    );
  }
  return tensor.values as Float32Array;
}

/**
 * Reads a checkpoint file tensor by tensor (each into its own array: memory is the data's size, and
 * a file larger than one Node.js buffer reads too), checking the safetensors structure, the format
 * and version, and the checksum over every byte.
 */
async function readVerified(
  path: string,
): Promise<{ tensors: Map<string, StoredTensor>; metadata: Record<string, string> }> {
  const refuse = (why: string): never =>
    fail(path, `${why}: pass the path of a checkpoint (.safetensors) written by saveCheckpoint`, {
      field: 'file',
    });
  const { handle, size } = await openRegularFile(path, refuse);
  try {
    const prefix = new Uint8Array(Math.min(8, size));
    await readExactly(handle, prefix, 0, refuse);
    const n = safetensorsHeaderLength(prefix, size, { file: path });
    const header = new Uint8Array(n);
    await readExactly(handle, header, 8, refuse);
    const { entries, metadata } = parseSafetensorsHeader(header, size - 8 - n, { file: path });

    if (metadata.format !== CHECKPOINT_FORMAT) {
      fail(
        path,
        `is not an ane-train checkpoint (__metadata__.format is ${metadata.format === undefined ? 'missing' : `'${metadata.format}'`}, expected '${CHECKPOINT_FORMAT}'): for Hugging Face weights use importHuggingFace, for llama2.c use readLlama2cCheckpoint`,
        { field: 'format' },
      );
    }
    if (metadata.version !== String(CHECKPOINT_VERSION)) {
      fail(
        path,
        `is checkpoint version ${metadata.version ?? '(none)'}; this ane-train reads version ${CHECKPOINT_VERSION}: load it with the ane-train that wrote it`,
        { field: 'version' },
      );
    }
    const stored = metadata.checksum;
    const at = checksumOffset(header);
    if (stored === undefined || !/^sha256:[0-9a-f]{64}$/.test(stored) || at === undefined) {
      fail(
        path,
        `__metadata__.checksum is missing or malformed (${JSON.stringify(stored)}): the file is corrupted`,
        { field: 'checksum' },
      );
    }
    // The hash of the file with the checksum's own digits read as '0's, in file order.
    const hash = createHash('sha256');
    hash.update(prefix);
    hash.update(header.subarray(0, at));
    hash.update(Buffer.alloc(HEX_DIGITS, '0'));
    hash.update(header.subarray(at + HEX_DIGITS));
    const tensors = new Map<string, StoredTensor>();
    const update = (chunk: Uint8Array) => hash.update(chunk);
    for (const entry of [...entries].sort((x, y) => x.begin - y.begin)) {
      const length = entry.end - entry.begin;
      const values = entry.dtype === 'F32' ? new Float32Array(length / 4) : new Uint8Array(length);
      const bytes = new Uint8Array(values.buffer, 0, length);
      await readExactly(handle, bytes, 8 + n + entry.begin, refuse, update);
      tensors.set(entry.name, { dtype: entry.dtype, shape: entry.shape, values });
    }
    const actual = hash.digest('hex');
    if (`${CHECKSUM_PREFIX}${actual}` !== stored) {
      fail(
        path,
        `checksum mismatch (stored ${stored.slice(0, 19)}…, the bytes hash to sha256:${actual.slice(0, 12)}…): the file is corrupted; load an earlier checkpoint`,
        { field: 'checksum' },
      );
    }
    return { tensors, metadata };
  } finally {
    await handle.close();
  }
}

/**
 * Reads and verifies a checkpoint (see the module comment), tensor by tensor. `options.config`: the config the caller expects (e.g. the model it is
 * about to resume); a difference is a CheckpointError naming the field.
 */
export async function loadCheckpoint(path: string, options: LoadCheckpointOptions = {}): Promise<Checkpoint> {
  if (typeof path !== 'string' || path === '') {
    fail(undefined, `loadCheckpoint(path): path must be a file path, got ${describe(path)}`, {
      field: 'path',
    });
  }
  if (options === null || typeof options !== 'object') {
    fail(
      path,
      `loadCheckpoint(path, options): options must be an object { config? }, got ${describe(options)}`,
      {
        field: 'options',
      },
    );
  }
  const { tensors, metadata } = await readVerified(path);
  const config = checkedConfig(parseJson(path, metadata, 'config'), path, '__metadata__.config');
  if (options.config !== undefined) {
    const expected = checkedConfig(options.config, path, 'options.config');
    const difference = configDifference(config, expected);
    if (difference !== undefined) {
      fail(
        path,
        `was saved from a model with ${difference.field} ${JSON.stringify(difference.a)}, but the model here has ${difference.field} ${JSON.stringify(difference.b)}: resume with the checkpoint's model config`,
        { field: `config.${difference.field}` },
      );
    }
  }

  const specs = parameterSpecs(config);
  const weights = new Map<string, Float32Array>();
  for (const spec of specs)
    weights.set(spec.name, checkTensor(path, tensors, spec.name, spec.shape, 'weight'));
  const known = new Set(specs.map((spec) => spec.name));
  const optimizerTensors = new Set<string>();
  for (const name of tensors.keys()) {
    if (name.startsWith(OPTIMIZER_PREFIX)) optimizerTensors.add(name);
    else if (!known.has(name)) {
      fail(
        path,
        `tensor '${name}' is not a parameter of the checkpoint's model: the file was not written by saveCheckpoint`,
        {
          tensor: name,
        },
      );
    }
  }

  const checkpoint: Checkpoint = { config, weights };
  if (metadata.trainer !== undefined) {
    checkpoint.trainer = trainerStateOf(
      path,
      parseJson(path, metadata, 'trainer'),
      tensors,
      specs,
      optimizerTensors,
    );
  } else if (optimizerTensors.size > 0) {
    fail(
      path,
      `holds optimizer tensors ('${[...optimizerTensors][0]}') but no __metadata__.trainer: the file is corrupted`,
      {
        field: 'trainer',
      },
    );
  }
  if (metadata.data !== undefined) checkpoint.data = parseJson(path, metadata, 'data');
  const extra = Object.fromEntries(
    Object.entries(metadata).filter(([key]) => !(RESERVED as readonly string[]).includes(key)),
  );
  if (Object.keys(extra).length > 0) checkpoint.metadata = extra;
  return checkpoint;
}

/** The TrainerState stored in `value` (JSON) and the optimizer tensors, checked against the model. */
function trainerStateOf(
  file: string,
  value: unknown,
  tensors: Map<string, StoredTensor>,
  specs: readonly ParameterSpec[],
  optimizerTensors: Set<string>,
): TrainerState {
  const bad = (why: string): never =>
    fail(file, `__metadata__.trainer ${why}: the file is corrupted`, { field: 'trainer' });
  if (value === null || typeof value !== 'object' || Array.isArray(value)) bad('is not an object');
  const stored = value as StoredTrainerState;
  for (const field of ['step', 'seed'] as const) {
    if (!Number.isSafeInteger(stored[field]) || stored[field] < 0) bad(`.${field} is not a whole number ≥ 0`);
  }
  const meta = stored.optimizer;
  if (
    meta === null ||
    typeof meta !== 'object' ||
    !Array.isArray(meta.tensors) ||
    !Array.isArray(meta.buffers)
  ) {
    bad('.optimizer is not an ane-optim optimizer state');
  }
  if (
    stored.lossScaler !== null &&
    (typeof stored.lossScaler !== 'object' || Array.isArray(stored.lossScaler))
  ) {
    bad('.lossScaler is neither null nor a loss-scaler state');
  }
  const shapes = new Map(specs.map((spec) => [spec.name, spec.shape]));
  let total = 0;
  for (const entry of meta.buffers) {
    if (
      entry === null ||
      typeof entry !== 'object' ||
      typeof entry.tensor !== 'string' ||
      typeof entry.field !== 'string' ||
      !Number.isSafeInteger(entry.offset) ||
      !Number.isSafeInteger(entry.length) ||
      entry.offset < 0
    ) {
      bad(`.optimizer.buffers holds ${JSON.stringify(entry)}`);
    }
    const shape = shapes.get(entry.tensor);
    if (shape === undefined) {
      fail(
        file,
        `the optimizer state names '${entry.tensor}', which is not a parameter of the checkpoint's model`,
        {
          tensor: entry.tensor,
          field: 'trainer',
        },
      );
    }
    total = Math.max(total, entry.offset + entry.length);
  }
  const data = new Float32Array(total);
  const expected = new Set<string>();
  for (const entry of meta.buffers) {
    const name = `${OPTIMIZER_PREFIX}${entry.tensor}/${entry.field}`;
    expected.add(name);
    const values = checkTensor(file, tensors, name, shapes.get(entry.tensor)!, 'optimizer state');
    if (values.length !== entry.length) bad(`.optimizer.buffers: '${name}' has length ${entry.length}`);
    data.set(values, entry.offset);
  }
  for (const name of optimizerTensors) {
    if (!expected.has(name)) {
      fail(
        file,
        `tensor '${name}' is not in the optimizer state __metadata__.trainer lists: the file is corrupted`,
        {
          tensor: name,
        },
      );
    }
  }
  return {
    step: stored.step,
    seed: stored.seed,
    optimizer: { meta, data },
    lossScaler: stored.lossScaler ?? null,
  };
}

/**
 * Saves `trainer`'s weights and state with `extra.data` (e.g. the sampler's state) and
 * `extra.metadata`. Between fit calls it writes straight from the live arrays (no copy of a large
 * model): meanwhile the Trainer's steps wait and loadWeights/loadState refuse. Called during fit
 * (from a callback), it copies them at once, so the steps may go on while the file is written.
 */
export async function saveTrainerCheckpoint(
  path: string,
  trainer: Trainer,
  extra: { data?: unknown; metadata?: Record<string, string> } = {},
): Promise<void> {
  checkTrainer(trainer, 'saveTrainerCheckpoint(path, trainer)');
  if (extra === null || typeof extra !== 'object') {
    fail(
      path,
      `saveTrainerCheckpoint: extra must be an object { data?, metadata? }, got ${describe(extra)}`,
      {
        field: 'extra',
      },
    );
  }
  await trainer.withCheckpointView(({ weights, state, optimizerBuffers }) =>
    writeCheckpoint(
      path,
      {
        config: trainer.config,
        weights,
        trainer: state,
        ...(extra.data !== undefined ? { data: extra.data } : {}),
        ...(extra.metadata !== undefined ? { metadata: extra.metadata } : {}),
      },
      optimizerBuffers,
    ),
  );
}

/**
 * Loads a checkpoint's weights and trainer state (if it has one) into `trainer`. A config that
 * differs from the trainer's, or a state that does not fit it (another optimizer, loss scaling on
 * vs off), is a CheckpointError, and the trainer is left as it was.
 */
export function restoreTrainer(trainer: Trainer, checkpoint: Checkpoint): void {
  checkTrainer(trainer, 'restoreTrainer(trainer, checkpoint)');
  if (checkpoint === null || typeof checkpoint !== 'object' || !(checkpoint.weights instanceof Map)) {
    fail(
      undefined,
      `restoreTrainer: checkpoint must be the result of loadCheckpoint, got ${describe(checkpoint)}`,
      {
        field: 'checkpoint',
      },
    );
  }
  const difference = configDifference(checkedConfig(checkpoint.config, undefined, 'config'), trainer.config);
  if (difference !== undefined) {
    fail(
      undefined,
      `restoreTrainer: the checkpoint's model has ${difference.field} ${JSON.stringify(difference.a)}, this Trainer's ${JSON.stringify(difference.b)}: create the Trainer with the checkpoint's config (checkpoint.config)`,
      { field: `config.${difference.field}` },
    );
  }
  const previous = new Map([...trainer.weights].map(([name, values]) => [name, values.slice()]));
  try {
    trainer.loadWeights(checkpoint.weights);
  } catch (error) {
    if (error instanceof TrainError) {
      // fit running, a checkpoint being written, disposed: say which call was refused
      throw new TrainError(`restoreTrainer: ${error.message.replace(/^loadWeights: /, '')}`);
    }
    if (error instanceof ConfigError) {
      fail(undefined, `restoreTrainer: ${error.message}`, {
        ...(error.field !== undefined ? { tensor: error.field } : {}),
      });
    }
    throw error;
  }
  if (checkpoint.trainer === undefined) return;
  try {
    trainer.loadState(checkpoint.trainer);
  } catch (error) {
    trainer.loadWeights(previous);
    throw error;
  }
}

function checkTrainer(trainer: unknown, call: string): void {
  if (!(trainer instanceof Trainer)) {
    throw new CheckpointError(
      `${call}: trainer must be a Trainer (new Trainer({ model, … })), got ${describe(trainer)}`,
      {
        field: 'trainer',
      },
    );
  }
}
