// The JupyterLab versions the simulator runs, each in a Python venv of its own made from its
// requirements file here, and nothing twice.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CACHE_DIR, run } from '../../project.mjs';

const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');

/**
 * Debian's Python for the venvs: the simulator runs them as an unprivileged user, and a venv
 * only links to its interpreter, which must be readable by that user (a pyenv under /root is not).
 */
const VENV_PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/**
 * One Python venv per `jupyterlab-*.txt` beside this file, for the AI Studio simulator;
 * `npm test` makes them ahead of the tests, a simulator on first use.
 * @returns {Record<string, string>} requirement name (such as `jupyterlab-3.6`) -> venv directory
 */
export function ensureJupyterVenvs() {
  const requirementsDir = dirname(fileURLToPath(import.meta.url));
  const venvs = {};
  for (const file of readdirSync(requirementsDir).filter((f) => /^jupyterlab-.*\.txt$/.test(f))) {
    const name = basename(file, '.txt');
    const requirements = join(requirementsDir, file);
    const venv = join(CACHE_DIR, `venv-${name}`);
    const stamp = join(venv, '.requirements-sha256');
    const wanted = `${sha256(requirements)} ${VENV_PYTHON}`;
    venvs[name] = venv;
    if (existsSync(stamp) && readFileSync(stamp, 'utf8') === wanted) continue;
    run(VENV_PYTHON, ['-m', 'venv', '--clear', venv]);
    run(join(venv, 'bin', 'pip'), ['install', '--disable-pip-version-check', '--quiet', '-r', requirements]);
    run(join(venv, 'bin', 'jupyter'), ['lab', '--version']);
    writeFileSync(stamp, wanted);
  }
  return venvs;
}
