/**
 * The simulator reads slices and transposes that feed matmul in place (compile option
 * inPlaceOperands, default on).
 */
import { loadNativeAddon } from 'ane-bridge';
import { describe } from 'vitest';
import { itSavesStepsWithoutChangingABit } from './option-parity';

// Apple's Accelerate GEMM (macOS arm64) may sum in a layout-dependent order: the simulator does not
// read operands in place there, and this comparison does not apply.
const accelerate = loadNativeAddon().addon?.capabilities().gemm === 'accelerate';

describe.skipIf(accelerate)('matmul operands read in place (skipped with the Accelerate GEMM)', () => {
  itSavesStepsWithoutChangingABit('inPlaceOperands', 'give the same bytes as planned copies');
});
