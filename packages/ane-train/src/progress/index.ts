export * from './format';
export * from './progress';
