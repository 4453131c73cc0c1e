/**
 * Errors a device raises. Each message says what was expected, what was found and what to do.
 */

/** The requested backend cannot run on this machine (e.g. `ane` on Linux). */
export class DeviceUnavailableError extends Error {
  override name = 'DeviceUnavailableError';
  constructor(
    message: string,
    /** Why the backend is unavailable, in words a user can act on. */
    readonly reason: string,
  ) {
    super(message);
  }
}

/**
 * A program did not compile. On the ANE the text is the framework's own; in the simulator it is
 * the parser's, validator's or rule table's, with a line, column and caret excerpt when known.
 */
export class CompileError extends Error {
  override name = 'CompileError';
  constructor(
    message: string,
    readonly details: {
      /** ANE rule id from the rule table when a hardware rule was broken (e.g. 'conv-weight-const'). */
      ruleId?: string;
      /** 1-based position in the MIL text, when known. */
      line?: number;
      column?: number;
      cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
  }
}

/** The per-process compile budget is spent: the hardware framework fails the same way (~119 compiles). */
export class CompileBudgetError extends CompileError {
  override name = 'CompileBudgetError';
}

/** A kernel was run with inputs that do not match its signature, or after it was disposed. */
export class KernelInputError extends Error {
  override name = 'KernelInputError';
}

/** The device failed while running a compiled kernel. */
export class DeviceError extends Error {
  override name = 'DeviceError';
}

/**
 * `openDevice` was given an option it does not know or a value it cannot use (an unknown key, a
 * chip outside M1–M5, a backend other than auto/ane/sim). The message suggests the nearest valid
 * spelling. A RangeError, as these were before they had their own class.
 */
export class DeviceOptionsError extends RangeError {
  override name = 'DeviceOptionsError';
  constructor(
    message: string,
    /** The option at fault (`chip`, `backend`, `compileBudget`, or the unknown key). */
    readonly option: string,
  ) {
    super(message);
  }
}

/**
 * `device.compile` was given something that is not a `Program` ({ mil, weights, inputs, outputs }):
 * the message names the field, what it must be and what was found.
 */
export class InvalidProgramError extends TypeError {
  override name = 'InvalidProgramError';
}

/**
 * `device.load` was given something that is not a plan it can run (not `partition()`'s result, a
 * plan for another chip, a bad option), or a plan executable was used wrongly (read before run).
 */
export class PlanError extends Error {
  override name = 'PlanError';
}

/**
 * A plan executable was fed a value it cannot take: an unknown name, the wrong length or type, a
 * source never given a value. Nothing was written: the executable keeps its previous values.
 */
export class PlanFeedError extends TypeError {
  override name = 'PlanFeedError';
  constructor(
    message: string,
    /** The feed at fault, when one is. */
    readonly feed?: string,
  ) {
    super(message);
  }
}
