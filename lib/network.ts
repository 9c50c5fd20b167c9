/**
 * The sandbox's network: its network namespace and what is in it. Compiled into child
 * steps; src-native/child_net.cc executes them.
 */
import type { PlannedStep } from './steps';

/** Network options of spawnIsolated (the `net` namespace flag itself is a core option). */
export interface NetworkOptions {}

/** The option names this file owns. */
export const NETWORK_OPTION_KEYS = [] as const;

/** Network options after validation. */
export interface ValidatedNetwork {
  netNamespace: boolean;
}

/** Validates the network options; `netNamespace` is options.net. */
export function validateNetwork(_options: NetworkOptions, netNamespace: boolean): ValidatedNetwork {
  return { netNamespace };
}

/** Before anything else: joining existing namespaces (setns). */
export function joinSteps(_network: ValidatedNetwork): PlannedStep[] {
  return [];
}

/** Inside the new network namespace: interfaces up. */
export function networkSteps(_network: ValidatedNetwork): PlannedStep[] {
  return [];
}
