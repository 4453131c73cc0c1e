import type { Program } from 'ane-ir/mil';
import { compileSimProgram } from '../sim';
import type { BackendImplementation, ChipFamily } from './device';

/** The simulator as a device backend: parses, validates, checks the ANE rules and plans once. */
export const simBackend: BackendImplementation = {
  compile: (program: Program, chip: ChipFamily) => compileSimProgram(program, { chip }),
};
