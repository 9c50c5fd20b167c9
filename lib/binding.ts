/** Loads the native addon: prebuilds/ first, then build/ (node-gyp-build). */
import * as path from 'node:path';
import type { NativeBinding } from '../types/native';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const load = require('node-gyp-build') as (dir: string) => unknown;

/** The addon, typed by its private contract (types/native.d.ts). */
export const binding = load(path.join(__dirname, '..')) as NativeBinding;
