/**
 * What the sandbox may use: resource limits. Compiled into child steps;
 * src-native/child_limits.cc executes them.
 */
import type { PlannedStep } from './steps';

/** Limit options of spawnIsolated. */
export interface LimitOptions {}

/** The option names this file owns. */
export const LIMIT_OPTION_KEYS = [] as const;

/** Limit options after validation. */
export interface ValidatedLimits {}

/** Validates the limit options. */
export function validateLimits(_options: LimitOptions): ValidatedLimits {
  return {};
}

/** Limits the child applies to itself before exec. */
export function limitSteps(_limits: ValidatedLimits): PlannedStep[] {
  return [];
}
