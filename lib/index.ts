/**
 * nsjail-node: start programs in fresh Linux namespaces from Node.js, in-process.
 *
 * @packageDocumentation
 */
export { spawnIsolated } from './spawn';
export { IsolatedProcess, type ExitStatus } from './process';
export { IsolationError, type IsolationErrorDetails } from './errors';
export { DEFAULT_PATH, type SpawnOptions, type StdioOption } from './options';
