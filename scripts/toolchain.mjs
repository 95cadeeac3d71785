// Bootstrap: installs what the build and the tests need on a fresh machine, and nothing twice.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE_DIR, ROOT, WASM_TARGET, capture, lockedCrateVersion, run } from '../project.mjs';

const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** The Rust pieces rustup can add: the wasm target and the fmt/clippy components the tests run. */
export function ensureRustTargetAndComponents() {
  const targets = capture('rustup', ['target', 'list', '--installed']) ?? '';
  if (!targets.split('\n').includes(WASM_TARGET)) run('rustup', ['target', 'add', WASM_TARGET]);
  const components = capture('rustup', ['component', 'list', '--installed']) ?? '';
  for (const component of ['rustfmt', 'clippy']) {
    if (!components.split('\n').some((line) => line.startsWith(component))) {
      run('rustup', ['component', 'add', component]);
    }
  }
}

/**
 * The wasm-bindgen CLI (and its test runner) at exactly the library version in Cargo.lock:
 * any other version refuses the wasm it did not make. Installed under the cache per version.
 * @returns {{ wasmBindgen: string, testRunner: string }}
 */
export function ensureWasmBindgenCli() {
  const version = lockedCrateVersion('wasm-bindgen');
  const installRoot = join(CACHE_DIR, `wasm-bindgen-${version}`);
  const tools = {
    wasmBindgen: join(installRoot, 'bin', 'wasm-bindgen'),
    testRunner: join(installRoot, 'bin', 'wasm-bindgen-test-runner'),
  };
  const installed = existsSync(tools.testRunner) && capture(tools.wasmBindgen, ['--version']);
  if (installed && installed.trim().endsWith(version)) return tools;

  const install = ['install', 'wasm-bindgen-cli', '--version', `=${version}`, '--root', installRoot, '--force'];
  try {
    run('cargo', [...install, '--locked']);
  } catch (error) {
    // The CLI's own lockfile can name a dependency version the registry no longer
    // serves (seen here: webpki-roots 1.0.11); the CLI version itself stays exact.
    console.warn(`${error.message}; retrying without the CLI's lockfile`);
    run('cargo', install);
  }
  return tools;
}

/** `npm ci` when node_modules does not match package-lock.json (a stamp records the last install). */
export function ensureNpmPackages() {
  const stamp = join(ROOT, 'node_modules', '.aistudio-ssh-lock-sha256');
  const wanted = sha256(join(ROOT, 'package-lock.json'));
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === wanted) return;
  run('npm', ['ci', '--no-audit', '--no-fund']);
  writeFileSync(stamp, wanted);
}

/** Installs missing Debian packages with apt when root; otherwise says what to install. */
export function ensureDebianPackages(packages) {
  const missing = packages.filter((name) => {
    const status = capture('dpkg-query', ['-W', '-f=${Status}', name]);
    return !status?.includes('install ok installed');
  });
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing Debian packages: ${missing.join(' ')}; run: sudo apt-get install ${missing.join(' ')}`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update'], { env });
  run('apt-get', ['install', '-y', ...missing], { env });
}

/**
 * What cross-builds the helper for Windows from Debian: rustup has no Windows standard
 * library here (and no internet to fetch one), so Debian's rustc-web builds its own from
 * rust-web-src (`-Zbuild-std`, allowed on a release compiler by RUSTC_BOOTSTRAP), linked by
 * MinGW-w64. Debian's cargo and rustc are named by path: rustup's stay first on PATH.
 */
export function ensureWindowsCrossToolchain() {
  ensureDebianPackages(['rustc-web', 'cargo-web', 'rust-web-src', 'gcc-mingw-w64-x86-64']);
  return {
    cargo: '/usr/bin/cargo',
    env: {
      ...process.env,
      RUSTC: '/usr/bin/rustc',
      RUSTC_BOOTSTRAP: '1',
      CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER: 'x86_64-w64-mingw32-gcc',
    },
  };
}
