/**
 * Loads the native addon: prebuilds/ first, then build/ (node-gyp-build). NSJAIL_NODE_ADDON,
 * when set, names another build of the same addon to load instead (the sanitizer build of
 * scripts/test-sanitize.sh); it must be an absolute path to a `.node` file.
 */
import * as path from 'node:path';
import type { NativeBinding } from '../types/native';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const load = require('node-gyp-build') as (dir: string) => unknown;

function loadBinding(): unknown {
  const override = process.env.NSJAIL_NODE_ADDON;
  if (override === undefined || override === '') return load(path.join(__dirname, '..'));
  // Absolute only: a relative path would resolve against whatever directory Node started in.
  if (!path.isAbsolute(override)) throw new Error(`NSJAIL_NODE_ADDON must be an absolute path to the addon, got ${JSON.stringify(override)}`);
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  return require(override);
}

/** The addon, typed by its private contract (types/native.d.ts). */
export const binding = loadBinding() as NativeBinding;
