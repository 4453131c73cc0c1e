/**
 * The simulator runs chains of elementwise ops fused (compile option fuseElementwise, default on).
 * The suite runs in compare mode, so each fused chain is also checked against its TS twin.
 */
import { describe } from 'vitest';
import { itSavesStepsWithoutChangingABit } from './option-parity';

describe('elementwise chains run fused', () => {
  itSavesStepsWithoutChangingABit('fuseElementwise', 'give the same bytes as one op at a time');
});
