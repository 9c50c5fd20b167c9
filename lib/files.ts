/** Small file helpers shared by the parts that read /proc, /sys and cgroup files. */
import * as fs from 'node:fs';

/** A file's text, or undefined when it cannot be read (missing, gone, not permitted). */
export function readTextIfExists(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}
