// The helper for Windows as tests run it: the cross-built `aistudio-ssh.exe` under Wine, in a
// prefix of the test's own (a Windows user's profile folders and registry), whose server is
// stopped and whose folder is removed afterwards.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WINDOWS_HELPER_BINARY } from '../../project.mjs';

const HARNESS_DIR = dirname(fileURLToPath(import.meta.url));
/** Debian's wine64 package puts its programs here (no `wine` on PATH without its wrapper). */
const WINE = '/usr/lib/wine/wine64';
const WINESERVER = '/usr/lib/wine/wineserver64';

/**
 * A new Wine prefix. `helper(args)` and `reg(args)` run there and give { status, stdout,
 * stderr }; `spawnHelper` starts one; `localAppData` is the user's %LOCALAPPDATA% seen from
 * this machine. `stop()`.
 */
export function winePrefix() {
  const home = mkdtempSync(join(tmpdir(), 'aistudio-ssh-wine-'));
  const prefix = join(home, 'prefix');
  const serverDir = join(home, 'tmp');
  mkdirSync(serverDir);
  const env = {
    ...process.env,
    WINEPREFIX: prefix,
    // Where Wine's server puts its socket folder: gone with the rest.
    TMPDIR: serverDir,
    WINEDEBUG: '-all',
    // No Mono or Gecko installer prompts: nothing here needs them.
    WINEDLLOVERRIDES: 'mscoree,mshtml=',
  };
  const stop = () => {
    // Every Wine process of the prefix ends with its server.
    spawnSync(WINESERVER, ['-k'], { env });
    rmSync(home, { recursive: true, force: true });
  };
  try {
    // The prefix made, and Wine's server and services started, with no pipe of ours: each
    // later call would otherwise wait for them to close our pipes (seconds after it ended).
    spawnSync(WINE, ['wineboot', '-i'], { env, stdio: 'ignore', timeout: 120_000 });
    const shim = spawnSync('x86_64-w64-mingw32-gcc', [
      '-shared', '-O2', '-o', join(prefix, 'drive_c', 'windows', 'system32', 'bcryptprimitives.dll'),
      join(HARNESS_DIR, 'wine-bcryptprimitives.c'), '-ladvapi32',
    ], { encoding: 'utf8' });
    if (shim.status !== 0) throw new Error(`the bcryptprimitives.dll shim did not build: ${shim.stderr}`);
  } catch (error) {
    stop();
    throw error;
  }
  const run = (args) => {
    const result = spawnSync(WINE, args, { env, encoding: 'utf8', timeout: 60_000 });
    if (result.error) throw result.error;
    return { status: result.status, stdout: result.stdout.replaceAll('\r\n', '\n'), stderr: result.stderr };
  };
  return {
    prefix,
    localAppData: join(prefix, 'drive_c', 'users', userInfo().username, 'AppData', 'Local'),
    helper: (args) => run([WINDOWS_HELPER_BINARY, ...args]),
    /** The helper as a running child with pipes, `extra` added to its environment. */
    spawnHelper: (args, extra = {}) => spawn(WINE, [WINDOWS_HELPER_BINARY, ...args], { env: { ...env, ...extra } }),
    reg: (args) => run(['reg', ...args]),
    stop,
  };
}
