/**
 * The CLI's run options file: `ane-train.config.json` in the working directory (read when present)
 * or the file `--options` names. It holds the settings a project keeps fixed between runs; a flag
 * given on the command line overrides the file's key of the same name.
 *
 * ```json
 * { "preset": "stories15M", "batch": 4, "seq": 256, "chip": "M4", "backend": "sim" }
 * ```
 *
 * Keys (all optional): `preset` (a preset name) or `config` (a Hugging Face config.json, relative
 * to the options file), `batch`, `seq` (whole numbers ≥ 1), `chip` (M1..M5), `backend`
 * (auto | ane | sim), and the `train` command's settings under the camelCase names of its flags
 * (`steps`, `lr`, `minLr`, `warmup`, `weightDecay`, `accumulate`, `evalEvery`, `evalBatches`,
 * `valFraction`, `checkpointEvery`, `keepCheckpoints`, `logEvery`, `seed`, `data`, `tokenizer`, `init`, `out`,
 * `sampleTokens`, `prompt`; paths relative to the options file). Unknown keys are refused, so a
 * typo cannot pass unnoticed.
 */
import { dirname, resolve } from 'node:path';
import { CHIP_FAMILIES } from 'ane-ir/mil';
import { z } from 'zod';
import { ConfigError } from '../errors';
import { readRegularFile } from '../io/files';
import { PRESET_NAMES, type PresetName } from '../model/config';
import type { ChipName } from '../model/training-graph';

/** The file read from the working directory when `--options` is not given. */
export const DEFAULT_OPTIONS_FILE = 'ane-train.config.json';

export const BACKENDS = ['auto', 'ane', 'sim'] as const;
export type BackendName = (typeof BACKENDS)[number];

const RUN_OPTIONS = z.strictObject({
  preset: z.enum(PRESET_NAMES as [PresetName, ...PresetName[]]).optional(),
  config: z.string().min(1).optional(),
  batch: z.number().int().positive().optional(),
  seq: z.number().int().positive().optional(),
  chip: z.enum(CHIP_FAMILIES as [ChipName, ...ChipName[]]).optional(),
  backend: z.enum(BACKENDS).optional(),
  // `ane-train train`
  steps: z.number().int().positive().optional(),
  lr: z.number().positive().finite().optional(),
  minLr: z.number().nonnegative().finite().optional(),
  warmup: z.number().int().nonnegative().optional(),
  weightDecay: z.number().nonnegative().finite().optional(),
  accumulate: z.number().int().positive().optional(),
  evalEvery: z.number().int().nonnegative().optional(),
  evalBatches: z.number().int().positive().optional(),
  valFraction: z.number().min(0).lt(1).optional(),
  checkpointEvery: z.number().int().nonnegative().optional(),
  keepCheckpoints: z.boolean().optional(),
  logEvery: z.number().int().positive().optional(),
  seed: z.number().int().nonnegative().optional(),
  data: z.string().min(1).optional(),
  tokenizer: z.string().min(1).optional(),
  init: z.string().min(1).optional(),
  out: z.string().min(1).optional(),
  sampleTokens: z.number().int().nonnegative().optional(),
  prompt: z.string().optional(),
});

/** The options file's keys that name files: resolved against the options file's directory. */
const PATH_KEYS = ['config', 'data', 'init', 'out'] as const;

/** The `train` command's settings an options file may hold (see the module comment). */
export interface TrainFileOptions {
  steps?: number;
  lr?: number;
  minLr?: number;
  warmup?: number;
  weightDecay?: number;
  accumulate?: number;
  evalEvery?: number;
  evalBatches?: number;
  valFraction?: number;
  checkpointEvery?: number;
  keepCheckpoints?: boolean;
  logEvery?: number;
  seed?: number;
  /** Absolute paths (resolved against the options file's directory). */
  data?: string;
  /** 'byte', 'llama2' or a tokenizer.json path (a path is resolved like the other paths). */
  tokenizer?: string;
  init?: string;
  out?: string;
  sampleTokens?: number;
  prompt?: string;
}

export interface RunOptions extends TrainFileOptions {
  preset?: PresetName;
  /** An absolute path (resolved against the options file's directory). */
  config?: string;
  batch?: number;
  seq?: number;
  chip?: ChipName;
  backend?: BackendName;
}

export interface LoadedRunOptions {
  options: RunOptions;
  /** The file they came from (undefined: no options file). */
  file?: string;
}

const KEYS = Object.keys(RUN_OPTIONS.shape).join(', ');

/** Reads and validates the options file: `explicit` (from `--options`), else `cwd/ane-train.config.json` if it exists. */
export async function loadRunOptions(explicit: string | undefined, cwd: string): Promise<LoadedRunOptions> {
  const file = resolve(cwd, explicit ?? DEFAULT_OPTIONS_FILE);
  // Only regular files: opening a FIFO for reading would wait for a writer forever.
  const absent = Symbol('absent');
  let text: string;
  try {
    text = readText(
      await readRegularFile(file, (why) => {
        if (explicit === undefined && why === 'does not exist') throw absent;
        throw new ConfigError(
          `options file ${file} ${why}: pass --options with a JSON file (keys: ${KEYS})`,
          'options',
          file,
        );
      }),
    );
  } catch (error) {
    if (error === absent) return { options: {} };
    throw error;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      `options file ${file} is not valid JSON (${(error as Error).message}): it holds one object with the keys ${KEYS}`,
      'options',
      file,
    );
  }
  const parsed = RUN_OPTIONS.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const keys = issue.code === 'unrecognized_keys' ? issue.keys : [];
    const field = keys[0] ?? (issue.path.join('.') || '(root)');
    const message =
      keys.length > 0
        ? `unknown key${keys.length === 1 ? '' : 's'} ${keys.map((k) => `'${k}'`).join(', ')}`
        : `'${field}': ${issue.message}`;
    throw new ConfigError(`options file ${file}: ${message}. The options file takes ${KEYS}`, field, file);
  }
  // Only the keys the file sets (exactOptionalPropertyTypes: an absent key is not `undefined`).
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed.data)) {
    if (value === undefined) continue;
    options[key] = (PATH_KEYS as readonly string[]).includes(key)
      ? resolve(dirname(file), value as string)
      : key === 'tokenizer' && value !== 'byte' && value !== 'llama2'
        ? resolve(dirname(file), value as string)
        : value;
  }
  return { options: options as RunOptions, file };
}

/** Reads a Hugging Face `config.json` and validates it (`parseLlamaConfig`); ConfigError names the file. */
export async function readConfigFile(path: string): Promise<unknown> {
  const text = readText(
    await readRegularFile(path, (why) => {
      throw new ConfigError(
        `model config ${path} ${why}: pass --config with a Hugging Face config.json`,
        'config',
        path,
      );
    }),
  );
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ConfigError(
      `model config ${path} is not valid JSON (${(error as Error).message}): a Hugging Face config.json is one JSON object`,
      'config',
      path,
    );
  }
}

function readText(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
