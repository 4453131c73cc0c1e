export * from './fp16';
export * from './program';
