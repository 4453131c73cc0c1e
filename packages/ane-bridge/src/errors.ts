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
