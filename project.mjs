// Facts about the checkout that every build and test step shares, and the one way to run a command.
// At the top, owned by no folder: scripts/, testbed/, tests/ and webpack.config.js import it.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = dirname(fileURLToPath(import.meta.url));

// rustup's cargo and rustc before any other, for every step and its children: Debian's
// rustc-web (the Windows helper's cross compiler, named by its path where used) puts a cargo
// and a rustc in /usr/bin that have no wasm32 target.
const RUSTUP_BIN = join(process.env.CARGO_HOME ?? join(homedir(), '.cargo'), 'bin');
if (existsSync(join(RUSTUP_BIN, 'rustup'))) process.env.PATH = `${RUSTUP_BIN}${delimiter}${process.env.PATH}`;
export const CRATE_NAME = 'aistudio-ssh';
export const WASM_TARGET = 'wasm32-unknown-unknown';
/** wasm-bindgen's output, the input of webpack. */
export const WASM_OUT_DIR = join(ROOT, 'build', 'wasm');
export const DIST_DIR = join(ROOT, 'dist');
/** The helper `npm run build` makes for this machine (the native messaging host and ProxyCommand). */
export const HELPER_BINARY = join(DIST_DIR, 'helper', 'aistudio-ssh');
/** The same helper for Windows, cross-built (`npm run build`), run by the tests under Wine. */
export const WINDOWS_HELPER_BINARY = join(DIST_DIR, 'helper', 'windows', 'aistudio-ssh.exe');
export const WINDOWS_TARGET = 'x86_64-pc-windows-gnu';
export const BROWSERS = ['chromium', 'firefox'];

/**
 * Tools and venvs live outside the checkout so fresh clones on one machine share them. As
 * root, under /var/cache: the simulator runs JupyterLab from these venvs as an unprivileged
 * user, who cannot enter /root.
 */
export const CACHE_DIR = process.env.AISTUDIO_SSH_CACHE
  ?? (process.getuid?.() === 0
    ? '/var/cache/aistudio-ssh'
    : join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'aistudio-ssh'));

/** Runs a command in the foreground, echoing it; throws when it fails. */
export function run(command, args, options = {}) {
  console.log(`$ ${[command, ...args].join(' ')}`);
  const result = spawnSync(command, args, { cwd: ROOT, stdio: 'inherit', ...options });
  if (result.error) throw new Error(`${command} could not start: ${result.error.message}`);
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed with ${result.status ?? result.signal}`);
  }
}

/** Runs a command quietly and returns its standard output, or null when it fails. */
export function capture(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', ...options });
  return result.status === 0 ? result.stdout : null;
}

/** The version of a package as locked in Cargo.lock: the wasm-bindgen CLI must match it exactly. */
export function lockedCrateVersion(name) {
  const lock = readFileSync(join(ROOT, 'Cargo.lock'), 'utf8');
  const match = lock.match(new RegExp(`\\[\\[package\\]\\]\\nname = "${name}"\\nversion = "([^"]+)"`));
  if (!match) throw new Error(`${name} is not in Cargo.lock`);
  return match[1];
}

/** The product version: `workspace.package.version` in Cargo.toml, the only place it is written. */
export function productVersion() {
  const metadata = capture('cargo', ['metadata', '--no-deps', '--format-version', '1']);
  if (!metadata) throw new Error('cargo metadata failed: is cargo on PATH?');
  const found = JSON.parse(metadata).packages.find((p) => p.name === CRATE_NAME);
  if (!found) throw new Error(`package ${CRATE_NAME} not found by cargo metadata`);
  return found.version;
}

/** Runs named steps in order, timing each, and exits non-zero on the first failure. */
export async function runSteps(title, steps) {
  const started = Date.now();
  for (const [name, step] of steps) {
    const stepStarted = Date.now();
    console.log(`\n== ${title}: ${name}`);
    try {
      await step();
    } catch (error) {
      console.error(`\n${title} failed at "${name}": ${error.message}`);
      process.exit(1);
    }
    console.log(`== ${name}: ${((Date.now() - stepStarted) / 1000).toFixed(1)} s`);
  }
  console.log(`\n${title}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
