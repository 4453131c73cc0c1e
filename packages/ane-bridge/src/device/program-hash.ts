/**
 * The compile cache key of a program: ane-ir's `hashProgram` (the one definition of a program's
 * identity: MIL text, weight blobs, I/O signature), salted with the device's backend and chip.
 */
export { hashProgram as programHash } from 'ane-ir';
