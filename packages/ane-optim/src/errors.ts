/**
 * Errors ane-optim raises. Each message says what was expected, what was found and what to do, and
 * every check runs before anything is mutated: a rejected call leaves weights and state as they were.
 */

/** A hyper-parameter, schedule or option is out of range (names the option and the value). */
export class OptimizerConfigError extends Error {
  override name = 'OptimizerConfigError';
  constructor(
    message: string,
    /** The option at fault, e.g. 'betas[1]' or 'groups[0].weightDecay'. */
    readonly option: string,
  ) {
    super(message);
  }
}

/** Parameters and gradients do not fit each other (a missing tensor, a length mismatch). */
export class OptimizerInputError extends Error {
  override name = 'OptimizerInputError';
  constructor(
    message: string,
    /** The tensor path at fault, e.g. 'layers.0.wq', when there is one. */
    readonly tensor?: string,
  ) {
    super(message);
  }
}

/** A saved state does not fit this optimizer, its parameters or this version of ane-optim. */
export class OptimizerStateError extends Error {
  override name = 'OptimizerStateError';
  constructor(
    message: string,
    readonly details: {
      /** The tensor whose state does not fit, e.g. 'layers.0.wq'. */
      tensor?: string;
      /** The field at fault: a state buffer ('m', 'v', 'momentum') or a header field ('version'). */
      field?: string;
      /** The file (the `source` given to decodeOptimizerState) the state came from. */
      file?: string;
    } = {},
  ) {
    super(message);
  }
}

export function describeValue(value: unknown): string {
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as Float32Array).length ?? '?'})`;
  if (Array.isArray(value)) return `an array of ${value.length}`;
  return typeof value;
}
