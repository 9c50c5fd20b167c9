/** `npm start` (the seed walkthrough) runs, shows what the seed shows, and cleans up. */
import * as childProcess from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

test('the demo shows PID 1, parent 0, only lo, and removes its rootfs', () => {
  const out = childProcess.execFileSync(process.execPath, [path.join(__dirname, '..', 'dist', 'demo.js')], { encoding: 'utf8' });
  expect(out).toContain('PID: 1   PPID: 0');
  expect(out).toContain('hostname: sandbox');
  expect(out).toMatch(/network interfaces: lo\n/);
  expect(out).toMatch(/root listing: bin lib lib64 proc usr/);
  expect(out).toContain('"exitCode":0');
  const root = /A rootfs in (\S+):/.exec(out)![1];
  expect(fs.existsSync(root)).toBe(false);
});
