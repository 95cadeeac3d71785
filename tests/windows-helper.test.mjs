// User story: on Windows, `aistudio-ssh install` registers the helper with the browsers I
// have (a manifest, and the browser's registry key naming it), and `uninstall` takes back
// exactly that. The cross-built helper under Wine, in a prefix of the test's own.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { winePrefix } from '../testbed/harness/wine.mjs';

const HOST = 'io.github.aistudio_ssh';
const CHROME_KEY = String.raw`HKCU\Software\Google\Chrome\NativeMessagingHosts`;
const FIREFOX_KEY = String.raw`HKCU\Software\Mozilla\NativeMessagingHosts`;

/** The default value of a registry key, or null when the key is not there. */
function defaultValue(wine, key) {
  const { status, stdout } = wine.reg(['query', key, '/ve']);
  if (status !== 0) return null;
  return stdout.match(/\(Default\)\s+REG_SZ\s+(.*)$/m)?.[1].trim() ?? null;
}

/** A Windows path of the prefix's drive C: as this machine sees it. */
const unixPath = (wine, windowsPath) => join(wine.prefix, 'drive_c', ...windowsPath.replace(/^C:\\/i, '').split('\\'));

test('Windows: install writes a manifest and each browser\'s registry key; uninstall removes exactly those', (t) => {
  const wine = winePrefix();
  t.after(() => wine.stop());

  // No browser yet: nothing is written, and the error says what to do.
  const none = wine.helper(['install']);
  assert.equal(none.status, 1, none.stdout + none.stderr);
  assert.match(none.stderr, /no Chrome, Chromium, Edge, Brave or Firefox settings folder found.*--dir/);
  assert.equal(defaultValue(wine, `${CHROME_KEY}\\${HOST}`), null);

  // Chrome and Firefox have run once; another program's host is registered with Chrome.
  mkdirSync(join(wine.localAppData, 'Google', 'Chrome', 'User Data'), { recursive: true });
  mkdirSync(join(wine.localAppData, 'Mozilla', 'Firefox'), { recursive: true });
  assert.equal(wine.reg(['add', `${CHROME_KEY}\\com.example.other`, '/ve', '/t', 'REG_SZ', '/d', 'C:\\other.json', '/f']).status, 0);

  const installed = wine.helper(['install']);
  assert.equal(installed.status, 0, installed.stderr);
  const chromeManifest = defaultValue(wine, `${CHROME_KEY}\\${HOST}`);
  const firefoxManifest = defaultValue(wine, `${FIREFOX_KEY}\\${HOST}`);
  assert.match(chromeManifest, /^C:\\users\\.+\\AppData\\Local\\aistudio-ssh\\NativeMessagingHosts\\chromium\\io\.github\.aistudio_ssh\.json$/);
  assert.match(firefoxManifest, /\\NativeMessagingHosts\\firefox\\io\.github\.aistudio_ssh\.json$/);
  // It says every file and key it wrote, and nothing for browsers that are not there.
  assert.match(installed.stdout, new RegExp(`^Google Chrome: set ${CHROME_KEY.replaceAll('\\', '\\\\')}\\\\${HOST.replaceAll('.', '\\.')} to `, 'm'));
  assert.match(installed.stdout, /^Firefox: wrote .*firefox\\io\.github\.aistudio_ssh\.json$/m);
  assert.doesNotMatch(installed.stdout, /Edge|Brave|Chromium:/);
  assert.equal(defaultValue(wine, String.raw`HKCU\Software\Microsoft\Edge\NativeMessagingHosts\${HOST}`), null);

  // What each browser reads: our program by an absolute path it can start, our ids only.
  const chrome = JSON.parse(readFileSync(unixPath(wine, chromeManifest), 'utf8'));
  assert.equal(chrome.name, HOST);
  assert.match(chrome.path, /^[A-Z]:\\.*\\aistudio-ssh\.exe$/);
  assert.deepEqual(chrome.allowed_origins, ['chrome-extension://nfbfpekjfcnniobpegkajkakabpienla/']);
  const firefox = JSON.parse(readFileSync(unixPath(wine, firefoxManifest), 'utf8'));
  assert.equal(firefox.path, chrome.path);
  assert.equal(firefox.allowed_extensions.length, 1);

  // Again: harmless, the same keys and files.
  const again = wine.helper(['install']);
  assert.equal(again.status, 0, again.stderr);
  assert.equal(again.stdout, installed.stdout);

  // Chrome was uninstalled meanwhile: its key is still ours to remove.
  rmSync(join(wine.localAppData, 'Google'), { recursive: true });
  const removed = wine.helper(['uninstall']);
  assert.equal(removed.status, 0, removed.stderr);
  assert.match(removed.stdout, /^Google Chrome: removed HKCU\\Software\\Google\\Chrome\\NativeMessagingHosts\\io\.github\.aistudio_ssh$/m);
  assert.equal(defaultValue(wine, `${CHROME_KEY}\\${HOST}`), null);
  assert.equal(defaultValue(wine, `${FIREFOX_KEY}\\${HOST}`), null);
  assert.equal(existsSync(unixPath(wine, chromeManifest)), false);
  assert.equal(existsSync(unixPath(wine, firefoxManifest)), false);
  // Nothing of anyone else's is touched.
  assert.equal(defaultValue(wine, `${CHROME_KEY}\\com.example.other`), 'C:\\other.json');

  // Nothing left to remove: nothing said, no error.
  const twice = wine.helper(['uninstall']);
  assert.equal(twice.status, 0, twice.stderr);
  assert.equal(twice.stdout, '');
});
