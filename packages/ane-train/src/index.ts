export * from './runtime';
export { version } from './version';
