// Bundles www/ into dist/chromium and dist/firefox; writes each manifest from www/manifest.json5.
import CopyPlugin from 'copy-webpack-plugin';
import JSON5 from 'json5';
import { join } from 'node:path';
import { BROWSERS, DIST_DIR, ROOT, productVersion } from './project.mjs';

const WWW = join(ROOT, 'www');
const version = productVersion();

/** The browser's manifest from the one source: version from Cargo.toml, background per browser. */
function transformManifest(source, browser) {
  const manifest = JSON5.parse(source.toString());
  manifest.version = version;
  if (browser === 'firefox') {
    // Firefox runs MV3 backgrounds as event pages with classic scripts.
    manifest.background = { scripts: [manifest.background.service_worker] };
    // Firefox knows the extension by its gecko id, and its linter rejects `key`.
    delete manifest.key;
  } else {
    delete manifest.browser_specific_settings;
  }
  return JSON.stringify(manifest, null, 2);
}

/** What every bundle shares: TypeScript, no code splitting (no dynamic import() anywhere). */
const common = (browser) => ({
  context: ROOT,
  devtool: false,
  resolve: { extensions: ['.ts', '.js'] },
  module: {
    rules: [{ test: /\.ts$/, loader: 'ts-loader', options: { configFile: join(WWW, 'tsconfig.json') } }],
  },
  output: {
    path: join(DIST_DIR, browser),
    filename: '[name].js',
    // The wasm-bindgen glue's `new URL('aistudio_ssh_bg.wasm', import.meta.url)` becomes
    // this file, loaded from the extension's own origin.
    assetModuleFilename: '[name][ext]',
    clean: false,
  },
  optimization: { splitChunks: false, runtimeChunk: false },
  // No Node polyfills: webpack's \`global\` shim is built on Function("return this"),
  // an eval that MV3's CSP forbids and that Firefox's linter flags.
  node: false,
  performance: { hints: false },
});

const configs = BROWSERS.flatMap((browser) => [
  {
    ...common(browser),
    name: `${browser}-background`,
    // A service worker (Chromium) or event page (Firefox): no document.
    target: 'webworker',
    entry: { background: join(WWW, 'src', 'background.ts') },
  },
  {
    ...common(browser),
    name: `${browser}-pages`,
    target: 'web',
    entry: {
      content: join(WWW, 'src', 'content.ts'),
      popup: join(WWW, 'src', 'popup.ts'),
      options: join(WWW, 'src', 'options.ts'),
      broker: join(WWW, 'src', 'broker.ts'),
    },
    plugins: [
      new CopyPlugin({
        patterns: [
          { from: 'www/*.html', to: '[name][ext]' },
          { from: 'www/*.css', to: '[name][ext]' },
          { from: 'www/_locales', to: '_locales' },
          {
            from: 'www/manifest.json5',
            to: 'manifest.json',
            transform: (source) => transformManifest(source, browser),
          },
        ],
      }),
    ],
  },
]);

export default configs;
