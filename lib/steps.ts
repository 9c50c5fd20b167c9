/** Planned steps: what the child runs (native part) and how a failure is named (label). */
import type { NativeStep } from '../types/native';

/** What a step is called in errors, and what it worked on. */
export interface StepLabel {
  step: string;
  syscall: string;
  path?: string;
  /** Extra words for the error message by errno code, e.g. `{ ENOSYS: 'needs Linux 5.12' }`. */
  hints?: Readonly<Record<string, string>>;
  /** For a step made of parts (an overlay's layers): the label of each, by the part the child reports. */
  parts?: readonly StepLabel[];
}

/** A step with its label: the native part goes to the child, the label stays for errors. */
export interface PlannedStep {
  native: NativeStep;
  label: StepLabel;
}

// mount(2) flags (linux/mount.h): stable ABI values.
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 0x40000;

/** A step whose label is its op's syscall. */
export function step(native: NativeStep, name: string, syscall: string, path?: string): PlannedStep {
  return { native, label: path === undefined ? { step: name, syscall } : { step: name, syscall, path } };
}

/** open(path, O_WRONLY) + write(data) in the child. */
export function writeFileStep(file: string, data: string, name: string): PlannedStep {
  return step({ op: 'writeFile', path: file, data }, name, 'write', file);
}
