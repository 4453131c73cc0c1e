/**
 * Errors ane-autograd raises. Each message names the op and node, says what was expected, what was
 * found and what to do.
 */

/** Base class of every error ane-autograd raises. */
export class AutogradError extends Error {
  override name = 'AutogradError';
}

/**
 * An op (or one case of it) has no gradient rule: e.g. a conv with stride 2, or the gradient of a
 * gather's table before ane-ir has the ops to express a scatter-add.
 */
export class UnsupportedError extends AutogradError {
  override name = 'UnsupportedError';
  constructor(
    /** The op as messages spell it (`conv`, `gather`, `pow`). */
    readonly op: string,
    /** The forward node being differentiated. */
    readonly node: string,
    /** What is unsupported, without the op and node. */
    readonly reason: string,
    /** What the caller can do instead. */
    readonly fix: string,
  ) {
    super(`no gradient for ${op} '${node}': ${reason}. Fix: ${fix}`);
  }
}
