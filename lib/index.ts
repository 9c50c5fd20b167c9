/**
 * nsjail-node: start programs in fresh Linux namespaces from Node.js, in-process.
 *
 * @packageDocumentation
 */
export { spawnIsolated, spawnIsolatedAsync, type Spawned } from './spawn';
export { IsolatedProcess, type ExitStatus, type CloseStatus, type IsolatedProcessEvents } from './process';
export { IsolationError, type IsolationErrorDetails } from './errors';
export { DEFAULT_PATH, type SpawnOptions, type StdioOption } from './options';
export { runIsolated, type RunOptions, type RunResult } from './run';
export { prepareSandbox, PreparedSandbox, type SandboxRun, type SandboxRunToEnd } from './prepared';
export {
  RLIMIT_RESOURCES, DEFAULT_FORCE_KILL_AFTER, type Limits, type LimitOptions, type LimitValue, type RlimitName, type RlimitRange,
} from './limits';
export type { ExitAccounting, ExitReason, KillReason } from './supervision';
export { DEFAULT_CGROUP_PARENT } from './cgroups';
export type {
  MountEntry, MountFlagOptions, BindMountEntry, TmpfsMountEntry, ProcMountEntry, DevMountEntry, MqueueMountEntry,
  DirEntry, FileEntry, SymlinkEntry, ChmodEntry, OverlayMountEntry,
} from './filesystem';
export { hostSystemMounts, type HostSystemOptions } from './presets';
export { createNetns, deleteNetns, listNetns, withNetns, netnsPath, NETNS_DIR, type CreateNetnsOptions } from './netns';
export type { NetworkOptions, JoinOptions, JoinKind, NamespaceRef, VethOptions, VethAddressPair } from './network';
export type { IdentityOptions, IdMapRange } from './identity';
export { configureHostIds, hostIdRange, DEFAULT_HOST_IDS, type HostIdRange } from './hostids';
export { CAPABILITY_NAMES, type CapabilityName } from './capabilities';
export {
  compileSeccomp, seccompPresets, type SeccompAction, type SeccompArgCondition, type SeccompOption, type SeccompPolicy,
  type SeccompProgram, type SeccompRule,
} from './seccomp';
export { doctor, formatDoctorReport, type DoctorReport } from './doctor';
export { buildRootfs, type RootfsManifest, type RootfsOptions } from './rootfs';
export type { FilesystemOptions } from './filesystem';
export type { CoreOptions } from './options';
