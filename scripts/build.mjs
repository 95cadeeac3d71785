// `npm run build`: from a fresh clone to dist/chromium, dist/firefox and their zips.
import {
  chmodSync, copyFileSync, createWriteStream, existsSync, mkdirSync, readdirSync, rmSync, statSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BROWSERS, CRATE_NAME, DIST_DIR, HELPER_BINARY, ROOT, WASM_OUT_DIR, WASM_TARGET, WINDOWS_HELPER_BINARY, WINDOWS_TARGET,
  productVersion, run, runSteps,
} from '../project.mjs';
import {
  ensureNpmPackages, ensureRustTargetAndComponents, ensureWasmBindgenCli, ensureWindowsCrossToolchain,
} from './toolchain.mjs';

const WASM_FILE = 'aistudio_ssh_bg.wasm';
/** The wasm features rustc enables by default for wasm32-unknown-unknown, which wasm-opt must accept and may keep. */
const WASM_FEATURES = [
  'bulk-memory', 'multivalue', 'mutable-globals', 'nontrapping-float-to-int', 'reference-types', 'sign-ext',
];

function buildWasm() {
  // --locked: build exactly what Cargo.lock says, the same on every machine.
  run('cargo', ['build', '--release', '--locked', '--target', WASM_TARGET, '-p', CRATE_NAME, '--lib']);
}

function bindWasm(wasmBindgen) {
  const input = join(ROOT, 'target', WASM_TARGET, 'release', 'aistudio_ssh.wasm');
  rmSync(WASM_OUT_DIR, { recursive: true, force: true });
  // --target web: an ES module with an explicit init(), which webpack bundles into the
  // service worker and extension pages without dynamic import().
  run(wasmBindgen, ['--target', 'web', '--out-dir', WASM_OUT_DIR, input]);
}

function optimizeWasm() {
  // binaryen from npm (pinned in package-lock.json), so every machine optimises alike.
  const wasmOpt = join(ROOT, 'node_modules', '.bin', 'wasm-opt');
  if (!existsSync(wasmOpt)) {
    console.warn('wasm-opt not found (npm package binaryen); shipping the wasm unoptimised');
    return;
  }
  const wasm = join(WASM_OUT_DIR, WASM_FILE);
  const before = statSync(wasm).size;
  const features = WASM_FEATURES.map((feature) => `--enable-${feature}`);
  run(wasmOpt, ['-Oz', ...features, wasm, '-o', wasm]);
  console.log(`wasm-opt (binaryen from npm): ${before} -> ${statSync(wasm).size} bytes`);
}

function bundle() {
  rmSync(DIST_DIR, { recursive: true, force: true });
  run(join(ROOT, 'node_modules', '.bin', 'webpack'), ['--mode', 'production']);
}

/**
 * The helper for this machine (`aistudio-ssh`: install, native-host, proxy, render), the same
 * binary as the CLI, put at dist/helper/aistudio-ssh beside the extensions.
 */
function buildHelper() {
  run('cargo', ['build', '--release', '--locked', '-p', CRATE_NAME, '--bin', CRATE_NAME]);
  mkdirSync(join(DIST_DIR, 'helper'), { recursive: true });
  copyFileSync(join(ROOT, 'target', 'release', CRATE_NAME), HELPER_BINARY);
  chmodSync(HELPER_BINARY, 0o755);
}

/** The helper for Windows users, cross-built, at dist/helper/windows/aistudio-ssh.exe. */
function buildWindowsHelper() {
  const { cargo, env } = ensureWindowsCrossToolchain();
  // A target folder of its own: another compiler than rustup's, whose builds it would redo.
  const targetDir = join(ROOT, 'target', 'windows');
  run(cargo, [
    'build', '--release', '--locked', '--target', WINDOWS_TARGET, '-Zbuild-std=std,panic_abort,panic_unwind',
    '-p', CRATE_NAME, '--bin', CRATE_NAME, '--target-dir', targetDir,
  ], { env });
  mkdirSync(dirname(WINDOWS_HELPER_BINARY), { recursive: true });
  copyFileSync(join(targetDir, WINDOWS_TARGET, 'release', `${CRATE_NAME}.exe`), WINDOWS_HELPER_BINARY);
}

/** Deterministic zips (fixed timestamps, sorted entries) of each browser's unpacked build. */
async function zipBuilds() {
  const { ZipFile } = await import('yazl');
  const version = productVersion();
  const fixedTime = new Date('2020-01-01T00:00:00Z');
  for (const browser of BROWSERS) {
    const dir = join(DIST_DIR, browser);
    const zip = new ZipFile();
    for (const file of listFiles(dir)) {
      zip.addFile(file, relative(dir, file), { mtime: fixedTime, mode: 0o100644 });
    }
    const target = join(DIST_DIR, `aistudio-ssh-${version}-${browser}.zip`);
    await new Promise((resolve, reject) => {
      zip.outputStream.pipe(createWriteStream(target)).on('close', resolve).on('error', reject);
      zip.end();
    });
    console.log(`${relative(ROOT, target)}: ${statSync(target).size} bytes`);
  }
}

function listFiles(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const path = join(dir, entry.name);
      return entry.isDirectory() ? listFiles(path) : [path];
    });
}

/** The build as named steps; `npm test` runs the same ones first. */
export function buildSteps() {
  let tools;
  return [
    ['rust target and components', ensureRustTargetAndComponents],
    ['wasm-bindgen CLI', () => { tools = ensureWasmBindgenCli(); }],
    ['npm packages', ensureNpmPackages],
    ['cargo build (wasm32, release)', buildWasm],
    ['wasm-bindgen', () => bindWasm(tools.wasmBindgen)],
    ['wasm-opt', optimizeWasm],
    ['webpack', bundle],
    ['zips', zipBuilds],
    ['cargo build (helper, release)', buildHelper],
    ['cargo build (helper for Windows, release)', buildWindowsHelper],
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  mkdirSync(DIST_DIR, { recursive: true });
  await runSteps('build', buildSteps());
}
