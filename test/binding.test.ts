/** NSJAIL_NODE_ADDON: the override that makes the library load another build of the addon. */
import * as childProcess from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir } from './helpers';

const project = path.join(__dirname, '..');
const addon = path.join(project, 'build', 'Release', 'nsjail_node.node');

/** Runs `script` in a fresh Node that loads dist/ with NSJAIL_NODE_ADDON set to `value`. */
function node(script: string, value: string): { status: number | null; stdout: string; stderr: string } {
  const env = { ...process.env, NSJAIL_NODE_ADDON: value };
  const r = childProcess.spawnSync(process.execPath, ['-e', script], { cwd: project, env, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('NSJAIL_NODE_ADDON', () => {
  test('an absolute path loads that file: a copy of the addon runs a sandbox', () => {
    const tmp = makeTempDir('nsjail-node-addon-');
    try {
      // A copy at a path node-gyp-build would never look at: that it loads proves the override.
      const copy = path.join(tmp.dir, 'copy.node');
      fs.copyFileSync(process.env.NSJAIL_NODE_ADDON ?? addon, copy);
      const script = `
        const { spawnIsolated } = require('./dist');
        spawnIsolated({ command: '/bin/sh', args: ['-c', 'exit 7'], pid: true, stdio: 'ignore' }).exited.then((s) => {
          console.log(s.exitCode, require('node:fs').readFileSync('/proc/self/maps', 'utf8').includes(${JSON.stringify(copy)}));
        });`;
      const r = node(script, copy);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('7 true\n');
    } finally {
      tmp.cleanup();
    }
  });

  test('a relative path is refused, naming the variable and the value', () => {
    const r = node("require('./dist')", 'build/Release/nsjail_node.node');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('NSJAIL_NODE_ADDON must be an absolute path to the addon, got "build/Release/nsjail_node.node"');
  });

  test('control: unset (or empty), the addon node-gyp-build finds under build/ is loaded', () => {
    const script = "require('./dist'); console.log(require('node:fs').readFileSync('/proc/self/maps', 'utf8').includes(" + JSON.stringify(addon) + '))';
    expect(node(script, '').stdout).toBe('true\n');
  });
});
