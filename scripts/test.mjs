// `npm test`: bootstrap and build as `npm run build` does, install what the tests need,
// then every check in order, stopping at the first failure.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSteps } from './build.mjs';
import { ROOT, WASM_TARGET, run, runSteps } from '../project.mjs';
import { ensureJupyterVenvs } from '../testbed/simulator/jupyterlab-venvs.mjs';
import { ensureDebianPackages, ensureWasmBindgenCli } from './toolchain.mjs';

/**
 * Debian's browsers and driver (never a downloaded one: Chromium with its driver, and Firefox
 * ESR, driven over its built-in Marionette), Chromium's zh-CN UI strings, a small CJK
 * font so screenshots of the zh_CN UI are legible, OpenSSH for the script tests and the
 * simulator, shellcheck for the scripts (sources and renders), pyflakes for the probe's Python,
 * Debian's Python venv for JupyterLab, and Wine to run the helper built for Windows.
 */
const TEST_PACKAGES = [
  'chromium', 'chromium-driver', 'chromium-l10n', 'firefox-esr', 'fonts-wqy-microhei', 'openssh-server', 'openssh-client',
  'shellcheck', 'pyflakes3', 'python3-venv', 'wine64',
];

function wasmBrowserTests() {
  const { testRunner } = ensureWasmBindgenCli();
  run('cargo', ['test', '--locked', '--target', WASM_TARGET, '--test', 'wasm', '--test', 'wasm_worker'], {
    env: {
      ...process.env,
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER: testRunner,
      CHROMEDRIVER: '/usr/bin/chromedriver',
      // Chromium flags for the driver's session (no sandbox as root, no network chatter).
      WASM_BINDGEN_TEST_WEBDRIVER_JSON: join(ROOT, 'tests', 'wasm-webdriver.json'),
    },
  });
}

const TS_TESTS_DIR = join(ROOT, 'build', 'ts-tests');
const bin = (name) => join(ROOT, 'node_modules', '.bin', name);

/** Type checks of the extension and of its unit tests (webpack's ts-loader sees only the bundles' files). */
function typeCheck() {
  run(bin('tsc'), ['-p', 'www/tsconfig.json', '--noEmit']);
  run(bin('tsc'), ['-p', 'www/tsconfig.test.json', '--noEmit']);
}

/** The `*.test.ts` beside the modules, compiled to CommonJS and run by node's test runner. */
function typeScriptUnitTests() {
  rmSync(TS_TESTS_DIR, { recursive: true, force: true });
  run(bin('tsc'), ['-p', 'www/tsconfig.test.json']);
  // The repository's package.json says "module"; these files are CommonJS.
  mkdirSync(TS_TESTS_DIR, { recursive: true });
  writeFileSync(join(TS_TESTS_DIR, 'package.json'), '{"type": "commonjs"}\n');
  const files = readdirSync(TS_TESTS_DIR).filter((f) => f.endsWith('.test.js')).sort();
  run(process.execPath, ['--test', ...files.map((f) => join(TS_TESTS_DIR, f))]);
}

function endToEndTests() {
  const files = readdirSync(join(ROOT, 'tests')).filter((f) => f.endsWith('.test.mjs')).sort();
  // One browser at a time: two cores, and each test owns its Chromium and servers.
  run(process.execPath, ['--test', '--test-concurrency=1', ...files.map((f) => join('tests', f))]);
}

await runSteps('test', [
  ...buildSteps(),
  ['TypeScript type check (tsc --noEmit)', typeCheck],
  ['TypeScript lint (eslint)', () => run(bin('eslint'), ['--max-warnings', '0'])],
  ['TypeScript unit tests (node --test)', typeScriptUnitTests],
  ['Debian packages for the tests', () => ensureDebianPackages(TEST_PACKAGES)],
  ['JupyterLab venvs', ensureJupyterVenvs],
  ['cargo fmt --check', () => run('cargo', ['fmt', '--all', '--check'])],
  ['cargo clippy (host)', () => run('cargo', ['clippy', '--locked', '--all-targets', '--', '-D', 'warnings'])],
  ['cargo clippy (wasm32)', () =>
    run('cargo', ['clippy', '--locked', '--all-targets', '--target', WASM_TARGET, '--', '-D', 'warnings'])],
  ['cargo test (host)', () => run('cargo', ['test', '--locked'])],
  ['wasm-bindgen-test in headless Chromium', wasmBrowserTests],
  // No Firefox driver in Debian 12: Mozilla's own linter checks the Firefox build instead.
  ['Firefox build lint (addons-linter)', () =>
    run(join(ROOT, 'node_modules', '.bin', 'addons-linter'), ['--warnings-as-errors', '--boring', 'dist/firefox'])],
  ['end-to-end tests', endToEndTests],
]);
