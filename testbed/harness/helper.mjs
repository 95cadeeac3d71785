// The helper on the user's computer as tests run it: the built `aistudio-ssh` registered as
// the test profile's native messaging host (by its own `install`), and the user's ssh, scp
// and sftp reaching it through the ssh config's ProxyCommand. Everything in the test's own
// folders: the machine's real browser folders are never written.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { HELPER_BINARY } from '../../project.mjs';
import { ARTIFACTS_DIR } from './browser.mjs';

const execFileAsync = promisify(execFile);

/**
 * A user's environment for direct mode: the helper on PATH (the ssh config names it
 * `aistudio-ssh`), a runtime folder of the test's own for its socket, and `extra` variables.
 * `remove()` when done.
 */
export function helperEnvironment(extra = {}) {
  const runtime = mkdtempSync(join(tmpdir(), 'aistudio-ssh-runtime-'));
  return {
    env: { ...process.env, XDG_RUNTIME_DIR: runtime, PATH: `${dirname(HELPER_BINARY)}:${process.env.PATH}`, ...extra },
    runtime,
    /** The keeper's pid while one runs (it leaves by itself a second after the browser). */
    keeperPid: () => {
      try {
        return Number(readFileSync(join(runtime, 'aistudio-ssh', 'keeper.pid'), 'utf8'));
      } catch {
        return null;
      }
    },
    /** What the keeper logged so far ('' before one ran). */
    keeperLog: () => {
      try {
        return readFileSync(join(runtime, 'aistudio-ssh', 'keeper.log'), 'utf8');
      } catch {
        return '';
      }
    },
    /** Keeps the keeper's log with a failed test's artifacts (test-results/). */
    saveLog(name) {
      try {
        mkdirSync(ARTIFACTS_DIR, { recursive: true });
        copyFileSync(join(runtime, 'aistudio-ssh', 'keeper.log'), join(ARTIFACTS_DIR, `${name}-keeper.log`));
      } catch { /* no keeper ran */ }
    },
    remove() {
      const pid = this.keeperPid();
      if (pid) try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
      rmSync(runtime, { recursive: true, force: true });
    },
  };
}

/** `aistudio-ssh install` into the profile's own NativeMessagingHosts (headless Chromium reads it there). */
export function installHelper(profile) {
  return execFileSync(HELPER_BINARY, ['install', '--dir', join(profile, 'NativeMessagingHosts'), '--browser', 'chromium'],
    { encoding: 'utf8' });
}

/**
 * `aistudio-ssh install` for Firefox, into `home`'s `.mozilla/native-messaging-hosts` (where
 * Firefox on Linux reads a user's hosts): the test runs Firefox with that home.
 */
export function installHelperForFirefox(home) {
  return execFileSync(HELPER_BINARY, [
    'install', '--dir', join(home, '.mozilla', 'native-messaging-hosts'), '--browser', 'firefox',
  ], { encoding: 'utf8' });
}

/** Options for `execFile` of the user's ssh tools. */
const userOptions = (env, timeout = 120_000) => ({ env, timeout, maxBuffer: 64 * 1024 * 1024 });

/** `ssh -F <config> <alias> <command>` as the user runs it, host keys checked strictly. */
export async function sshWith(env, config, alias, command, extra = []) {
  const { stdout } = await execFileAsync('ssh', ['-F', config, '-o', 'BatchMode=yes', ...extra, alias, command],
    userOptions(env));
  return stdout;
}

/** `scp -F <config> from to`. */
export async function scpWith(env, config, from, to) {
  await execFileAsync('scp', ['-q', '-F', config, '-o', 'BatchMode=yes', from, to], userOptions(env, 300_000));
}

/** `sftp -F <config> -b <commands> alias`: its output. */
export async function sftpWith(env, config, alias, commands) {
  const child = spawn('sftp', ['-F', config, '-o', 'BatchMode=yes', '-b', '-', alias], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk) => { out += chunk; });
  child.stderr.on('data', (chunk) => { err += chunk; });
  child.stdin.end(commands);
  const code = await new Promise((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`sftp exited with ${code}: ${err}`);
  return out;
}

/** The sha256 of a file, hex. */
export const sha256File = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');
