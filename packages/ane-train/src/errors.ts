/**
 * Errors ane-train raises. Each message says what was expected, what was found and what to do; a
 * rejected call changes nothing (no weight, no file, no optimizer state).
 */

/** A model config (a Hugging Face `config.json`, a preset name, Trainer/CLI options) that does not fit. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    /** The field at fault, e.g. 'num_key_value_heads' or 'batch'. */
    readonly field?: string,
    /** The file the config came from, when there is one. */
    readonly file?: string,
  ) {
    super(message);
  }
}

/** Training data (a token file, a batch) that is not what it should be. */
export class DataError extends Error {
  override name = 'DataError';
  constructor(
    message: string,
    readonly details: {
      /** The file at fault, when the data came from one. */
      file?: string;
      /** The byte offset at fault, when there is one. */
      offset?: number;
    } = {},
  ) {
    super(message);
  }
}

/** A weights / gradients / checkpoint file (safetensors) that does not fit. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
  constructor(
    message: string,
    readonly details: {
      file?: string;
      /** The tensor (by its Hugging Face name) or header field at fault. */
      tensor?: string;
      field?: string;
    } = {},
  ) {
    super(message);
  }
}

/** A training run that cannot go on (the device state was lost, a worker died). */
export class TrainError extends Error {
  override name = 'TrainError';
}
