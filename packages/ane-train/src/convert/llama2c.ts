/**
 * llama2.c checkpoints (`stories15M.bin` and friends), read and written.
 *
 * Two float32 layouts exist (karpathy/llama2.c `export.py`); both are little-endian:
 *
 *   legacy (version 0, what `run.c` reads and the TinyStories `.bin` files are):
 *     [0, 28)    seven int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
 *                vocab_size < 0 means the classifier is NOT shared with the embedding
 *     then fp32: token_embedding_table [V, D]; for every layer in turn rms_att_weight [D], then
 *                wq [H·HD, D], wk [KV·HD, D], wv [KV·HD, D], wo [D, H·HD], rms_ffn_weight [D],
 *                w1 [F, D], w2 [D, F], w3 [F, D] (each for all layers before the next);
 *                rms_final_weight [D]; freq_cis_real, freq_cis_imag [seq_len, HD/2] (unused, skipped);
 *                wcls [V, D] when not shared
 *   version 1 (`export.py --version 1`):
 *     [0, 256)   uint32 magic 0x616b3432 ("ak42"), int32 version 1, the same seven int32 (vocab_size
 *                positive), uint8 shared_classifier, zero padding
 *     then fp32: rms_att_weight (all layers), rms_ffn_weight (all layers), rms_final_weight,
 *                token_embedding_table, wq, wk, wv, wo, w1, w2, w3 (all layers each), [wcls]
 *
 * Matrices are nn.Linear's `[out, in]`, as Hugging Face's; w1 is gate_proj, w3 up_proj, w2 down_proj.
 * llama2.c's RoPE is interleaved (Meta's layout), Hugging Face's (and ours) rotate-half, so wq and wk
 * are permuted on the way in and back on the way out (./rope-layout.ts). run.c hard-codes RMSNorm
 * eps 1e-5 and RoPE theta 10000 and derives head_dim = dim / n_heads; the config says so.
 */
import { endianness } from 'node:os';
import { CheckpointError } from '../errors';
import { readRegularFile, writeFileAtomically } from '../io/files';
import { type LlamaConfig, resolveModel } from '../model/config';
import { checkModelToWrite } from './check-model';
import { interleavedToRotateHalf, rotateHalfToInterleaved } from './rope-layout';

/** A model in memory: its config and every parameter by Hugging Face name (fp32). */
export interface ConvertedModel {
  config: LlamaConfig;
  weights: Map<string, Float32Array>;
}

const MAGIC = 0x616b3432; // "ak42" as a little-endian uint32
const LEGACY_HEADER_BYTES = 28;
const VERSION1_HEADER_BYTES = 256;
const NORM_EPS = 1e-5;
const ROPE_THETA = 10000;

/** Header fields in file order, with the largest value a real model could have. */
const FIELDS = [
  ['dim', 65536],
  ['hidden_dim', 1 << 20],
  ['n_layers', 4096],
  ['n_heads', 65536],
  ['n_kv_heads', 65536],
  ['vocab_size', 1 << 24],
  ['seq_len', 1 << 22],
] as const;
type Field = (typeof FIELDS)[number][0];

interface Header {
  version: 0 | 1;
  dim: number;
  hiddenDim: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  seqLen: number;
  shared: boolean;
  headerBytes: number;
}

function refuse(
  file: string | undefined,
  what: string,
  where: { tensor?: string; field?: string } = {},
): never {
  const prefix = file !== undefined ? `llama2.c checkpoint ${file}` : 'llama2.c checkpoint';
  throw new CheckpointError(`${prefix}: ${what}`, { ...(file !== undefined ? { file } : {}), ...where });
}

/** Reads a llama2.c `.bin` (legacy or version 1, float32) into Hugging Face names and layout. */
export async function readLlama2cCheckpoint(file: string): Promise<ConvertedModel> {
  if (typeof file !== 'string' || file === '') {
    refuse(undefined, `readLlama2cCheckpoint(file) takes a path, got ${describe(file)}`, { field: 'file' });
  }
  const bytes = await readRegularFile(file, (why) =>
    refuse(file, `${why}: pass the path of a llama2.c .bin file (e.g. stories15M.bin)`, { field: 'file' }),
  );
  return parseLlama2cCheckpoint(bytes, { file });
}

/** `readLlama2cCheckpoint` on bytes already in memory. */
export function parseLlama2cCheckpoint(bytes: Uint8Array, options: { file?: string } = {}): ConvertedModel {
  const file = options.file;
  if (!(bytes instanceof Uint8Array)) {
    refuse(file, `parseLlama2cCheckpoint takes the file's bytes as a Uint8Array, got ${describe(bytes)}`);
  }
  checkLittleEndianHost(file);
  const header = readHeader(bytes, file);
  const { dim, hiddenDim: ffn, layers, heads, kvHeads, vocab, seqLen } = header;
  const headDim = dim / heads;
  const qDim = heads * headDim;
  const kvDim = kvHeads * headDim;

  // The tensors in file order: HF name (empty for the skipped freq tables) and float count.
  const perLayer = (hf: string, size: number) =>
    Array.from({ length: layers }, (_, l) => ({ name: `model.layers.${l}.${hf}`, size, layer: l }));
  const embed = [{ name: 'model.embed_tokens.weight', size: vocab * dim, layer: -1 }];
  const attnNorm = perLayer('input_layernorm.weight', dim);
  const ffnNorm = perLayer('post_attention_layernorm.weight', dim);
  const finalNorm = [{ name: 'model.norm.weight', size: dim, layer: -1 }];
  const wq = perLayer('self_attn.q_proj.weight', qDim * dim);
  const wk = perLayer('self_attn.k_proj.weight', kvDim * dim);
  const wv = perLayer('self_attn.v_proj.weight', kvDim * dim);
  const wo = perLayer('self_attn.o_proj.weight', dim * qDim);
  const w1 = perLayer('mlp.gate_proj.weight', ffn * dim);
  const w2 = perLayer('mlp.down_proj.weight', dim * ffn);
  const w3 = perLayer('mlp.up_proj.weight', ffn * dim);
  const freqs = [
    { name: '', size: (seqLen * headDim) / 2, layer: -1 }, // freq_cis_real, skipped
    { name: '', size: (seqLen * headDim) / 2, layer: -1 }, // freq_cis_imag, skipped
  ];
  const classifier = header.shared ? [] : [{ name: 'lm_head.weight', size: vocab * dim, layer: -1 }];
  const order =
    header.version === 0
      ? [
          ...embed,
          ...attnNorm,
          ...wq,
          ...wk,
          ...wv,
          ...wo,
          ...ffnNorm,
          ...w1,
          ...w2,
          ...w3,
          ...finalNorm,
          ...freqs,
          ...classifier,
        ]
      : [
          ...attnNorm,
          ...ffnNorm,
          ...finalNorm,
          ...embed,
          ...wq,
          ...wk,
          ...wv,
          ...wo,
          ...w1,
          ...w2,
          ...w3,
          ...classifier,
        ];

  const floats = order.reduce((n, t) => n + t.size, 0);
  const expectedBytes = header.headerBytes + 4 * floats;
  if (bytes.length !== expectedBytes) {
    const shape = `dim ${dim}, hidden_dim ${ffn}, n_layers ${layers}, n_heads ${heads}, n_kv_heads ${kvHeads}, vocab_size ${vocab}${header.shared ? ' (shared classifier)' : ' (own classifier)'}, seq_len ${seqLen}`;
    refuse(
      file,
      bytes.length < expectedBytes
        ? `is ${bytes.length} bytes, but its header (${shape}) needs ${expectedBytes} (a ${header.headerBytes}-byte header and ${floats} float32 values): the file is truncated; download or export it again`
        : `is ${bytes.length} bytes, but its header (${shape}) needs ${expectedBytes} (a ${header.headerBytes}-byte header and ${floats} float32 values): ${bytes.length - expectedBytes} bytes too many, so the header does not describe this file (only float32 llama2.c files are read)`,
      { field: 'size' },
    );
  }

  const weights = new Map<string, Float32Array>();
  let offset = header.headerBytes;
  for (const tensor of order) {
    const byteLength = 4 * tensor.size;
    if (tensor.name !== '') {
      const start = bytes.byteOffset + offset;
      const values =
        start % 4 === 0
          ? new Float32Array(bytes.buffer, start, tensor.size).slice()
          : // Uint8Array's slice copies; a Buffer's slice is a view of its (pooled) ArrayBuffer.
            new Float32Array(Uint8Array.prototype.slice.call(bytes, offset, offset + byteLength).buffer);
      const bad = firstNonFinite(values);
      if (bad >= 0) {
        refuse(
          file,
          `tensor '${tensor.name}' holds ${values[bad]} at byte offset ${offset + 4 * bad}: a model's weights are finite, so the file is corrupt`,
          { tensor: tensor.name },
        );
      }
      weights.set(tensor.name, values);
    }
    offset += byteLength;
  }
  // llama2.c's interleaved RoPE pairs → Hugging Face's rotate-half halves.
  for (let l = 0; l < layers; l++) {
    const q = `model.layers.${l}.self_attn.q_proj.weight`;
    const k = `model.layers.${l}.self_attn.k_proj.weight`;
    weights.set(q, interleavedToRotateHalf(weights.get(q)!, heads, headDim, dim));
    weights.set(k, interleavedToRotateHalf(weights.get(k)!, kvHeads, headDim, dim));
  }

  const config: LlamaConfig = {
    model_type: 'llama',
    hidden_size: dim,
    intermediate_size: ffn,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    vocab_size: vocab,
    rms_norm_eps: NORM_EPS,
    rope_theta: ROPE_THETA,
    tie_word_embeddings: header.shared,
    max_position_embeddings: seqLen,
  };
  // Hugging Face's parameter order, as parameterSpecs and every other map here.
  const ordered = new Map<string, Float32Array>();
  ordered.set('model.embed_tokens.weight', weights.get('model.embed_tokens.weight')!);
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    for (const name of [
      'input_layernorm',
      'self_attn.q_proj',
      'self_attn.k_proj',
      'self_attn.v_proj',
      'self_attn.o_proj',
      'post_attention_layernorm',
      'mlp.gate_proj',
      'mlp.up_proj',
      'mlp.down_proj',
    ]) {
      ordered.set(`${p}.${name}.weight`, weights.get(`${p}.${name}.weight`)!);
    }
  }
  ordered.set('model.norm.weight', weights.get('model.norm.weight')!);
  if (!header.shared) ordered.set('lm_head.weight', weights.get('lm_head.weight')!);
  return { config, weights: ordered };
}

function readHeader(bytes: Uint8Array, file: string | undefined): Header {
  if (bytes.length < LEGACY_HEADER_BYTES) {
    refuse(
      file,
      `is ${bytes.length} bytes, shorter than llama2.c's ${LEGACY_HEADER_BYTES}-byte header (seven int32): the file is truncated or not a llama2.c checkpoint`,
      { field: 'header' },
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let version: 0 | 1 = 0;
  let fieldsAt = 0;
  let headerBytes = LEGACY_HEADER_BYTES;
  if (view.getUint32(0, true) === MAGIC) {
    const found = bytes.length >= 8 ? view.getInt32(4, true) : Number.NaN;
    if (found === 2 || found === 3) {
      refuse(
        file,
        `is llama2.c version ${found} (int${found === 2 ? 8 : 4}-quantized): only float32 files are read (the legacy format and version 1): export the model again with \`python export.py --version 0\` (or 1)`,
        { field: 'version' },
      );
    }
    if (found !== 1) {
      refuse(
        file,
        `starts with llama2.c's magic "ak42" but its version is ${found}: expected version 1 (float32); the legacy format has no magic`,
        { field: 'version' },
      );
    }
    if (bytes.length < VERSION1_HEADER_BYTES) {
      refuse(
        file,
        `is ${bytes.length} bytes, shorter than the ${VERSION1_HEADER_BYTES}-byte header of a version-1 llama2.c file: the file is truncated`,
        { field: 'header' },
      );
    }
    version = 1;
    fieldsAt = 8;
    headerBytes = VERSION1_HEADER_BYTES;
  }
  const value = {} as Record<Field, number>;
  FIELDS.forEach(([name, largest], i) => {
    const found = view.getInt32(fieldsAt + 4 * i, true);
    const magnitude = name === 'vocab_size' && version === 0 ? Math.abs(found) : found;
    if (magnitude < 1 || magnitude > largest) {
      refuse(
        file,
        `header field ${name} is ${found}; expected a whole number from 1 to ${largest}${name === 'vocab_size' && version === 0 ? ' (negative when the classifier is not shared)' : ''}: the file is corrupt or not a llama2.c checkpoint`,
        { field: name },
      );
    }
    value[name] = magnitude;
  });
  let shared = view.getInt32(fieldsAt + 20, true) > 0;
  if (version === 1) {
    const flag = bytes[fieldsAt + 28]!;
    if (flag > 1) {
      refuse(file, `header field shared_classifier is ${flag}; expected 0 or 1: the file is corrupt`, {
        field: 'shared_classifier',
      });
    }
    shared = flag === 1;
  }
  const { dim, n_heads: heads, n_kv_heads: kvHeads } = value;
  if (dim % heads !== 0 || (dim / heads) % 2 !== 0) {
    refuse(
      file,
      `header fields dim ${dim} and n_heads ${heads}: llama2.c's head size dim / n_heads must be a whole, even number (RoPE rotates pairs), found ${dim / heads}: the file is corrupt or not a llama2.c checkpoint`,
      { field: 'n_heads' },
    );
  }
  if (kvHeads > heads || heads % kvHeads !== 0) {
    refuse(
      file,
      `header field n_kv_heads is ${kvHeads}; it must divide n_heads (${heads}): the file is corrupt or not a llama2.c checkpoint`,
      { field: 'n_kv_heads' },
    );
  }
  return {
    version,
    dim,
    hiddenDim: value.hidden_dim,
    layers: value.n_layers,
    heads,
    kvHeads,
    vocab: value.vocab_size,
    seqLen: value.seq_len,
    shared,
    headerBytes,
  };
}

/**
 * Writes a model as a legacy llama2.c `.bin` (what `run.c` reads), atomically. The model must be one
 * llama2.c can express: a Llama (no Qwen3 q/k norms), head_dim = hidden_size / heads, RMSNorm eps
 * 1e-5 and RoPE theta 10000 (run.c's constants).
 */
export async function writeLlama2cCheckpoint(
  file: string,
  config: LlamaConfig,
  weights: ReadonlyMap<string, Float32Array>,
): Promise<void> {
  if (typeof file !== 'string' || file === '') {
    refuse(undefined, `writeLlama2cCheckpoint(file, …) takes a path, got ${describe(file)}`, {
      field: 'file',
    });
  }
  const bytes = encodeLlama2cCheckpoint(config, weights, { file });
  await writeFileAtomically(file, bytes, (why) =>
    refuse(
      file,
      `cannot be written (${why}): check the directory exists and is writable; nothing was written`,
      {
        field: 'file',
      },
    ),
  );
}

/** The bytes of a legacy llama2.c `.bin` of a model (see `writeLlama2cCheckpoint`). */
export function encodeLlama2cCheckpoint(
  given: LlamaConfig,
  weights: ReadonlyMap<string, Float32Array>,
  options: { file?: string } = {},
): Uint8Array {
  const file = options.file;
  if (given === null || typeof given !== 'object') {
    refuse(file, `the config must be a LlamaConfig object, got ${describe(given)}`, { field: 'config' });
  }
  const config = resolveModel(given); // a ConfigError for an invalid config, before anything else
  const unsupported = (field: keyof LlamaConfig, why: string): never =>
    refuse(file, `llama2.c cannot express this model: ${why}`, { field });
  if (config.model_type !== 'llama') {
    unsupported(
      'model_type',
      `model_type is '${config.model_type}' (its per-head q/k norms have no place in llama2.c); export it with exportHuggingFace instead`,
    );
  }
  if (config.head_dim * config.num_attention_heads !== config.hidden_size) {
    unsupported(
      'head_dim',
      `head_dim ${config.head_dim} × ${config.num_attention_heads} heads ≠ hidden_size ${config.hidden_size} (run.c derives head_dim = dim / n_heads); export it with exportHuggingFace instead`,
    );
  }
  if (config.rms_norm_eps !== NORM_EPS) {
    unsupported('rms_norm_eps', `rms_norm_eps is ${config.rms_norm_eps}; run.c uses ${NORM_EPS}`);
  }
  if (config.rope_theta !== ROPE_THETA) {
    unsupported('rope_theta', `rope_theta is ${config.rope_theta}; run.c uses ${ROPE_THETA}`);
  }
  checkModelToWrite(config, weights, {
    ...(file !== undefined ? { file } : {}),
    what: 'writeLlama2cCheckpoint',
  });
  checkLittleEndianHost(file);

  const dim = config.hidden_size;
  const layers = config.num_hidden_layers;
  const heads = config.num_attention_heads;
  const kvHeads = config.num_key_value_heads;
  const headDim = config.head_dim;
  const seqLen = config.max_position_embeddings;
  const layerTensors = (hf: string) =>
    Array.from({ length: layers }, (_, l) => weights.get(`model.layers.${l}.${hf}`)!);
  const wq = layerTensors('self_attn.q_proj.weight').map((w) =>
    rotateHalfToInterleaved(w, heads, headDim, dim),
  );
  const wk = layerTensors('self_attn.k_proj.weight').map((w) =>
    rotateHalfToInterleaved(w, kvHeads, headDim, dim),
  );
  // freq_cis_real / imag [seq_len, HD/2], as model.py's precompute_freqs_cis (run.c ignores them).
  const cos = new Float32Array((seqLen * headDim) / 2);
  const sin = new Float32Array(cos.length);
  for (let p = 0; p < seqLen; p++) {
    for (let i = 0; i < headDim / 2; i++) {
      const angle = p / ROPE_THETA ** ((2 * i) / headDim);
      cos[p * (headDim / 2) + i] = Math.cos(angle);
      sin[p * (headDim / 2) + i] = Math.sin(angle);
    }
  }
  const tensors: Float32Array[] = [
    weights.get('model.embed_tokens.weight')!,
    ...layerTensors('input_layernorm.weight'),
    ...wq,
    ...wk,
    ...layerTensors('self_attn.v_proj.weight'),
    ...layerTensors('self_attn.o_proj.weight'),
    ...layerTensors('post_attention_layernorm.weight'),
    ...layerTensors('mlp.gate_proj.weight'),
    ...layerTensors('mlp.down_proj.weight'),
    ...layerTensors('mlp.up_proj.weight'),
    weights.get('model.norm.weight')!,
    cos,
    sin,
    ...(config.tie_word_embeddings ? [] : [weights.get('lm_head.weight')!]),
  ];
  const floats = tensors.reduce((n, t) => n + t.length, 0);
  const out = new Uint8Array(LEGACY_HEADER_BYTES + 4 * floats);
  const view = new DataView(out.buffer);
  const vocab = config.tie_word_embeddings ? config.vocab_size : -config.vocab_size;
  [dim, config.intermediate_size, layers, heads, kvHeads, vocab, seqLen].forEach((v, i) => {
    view.setInt32(4 * i, v, true);
  });
  const body = new Float32Array(out.buffer, LEGACY_HEADER_BYTES, floats);
  let at = 0;
  for (const tensor of tensors) {
    body.set(tensor, at);
    at += tensor.length;
  }
  return out;
}

function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}

function checkLittleEndianHost(file: string | undefined): void {
  if (endianness() !== 'LE') refuse(file, 'llama2.c files are little-endian; this host is big-endian');
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'object') return (value as object).constructor?.name ?? 'an object';
  return typeof value === 'string' ? `the string '${value}'` : typeof value;
}
