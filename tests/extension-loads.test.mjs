// User story: I install the built extension and open its popup; it is alive, in my language.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { productVersion } from '../project.mjs';
import { EXTENSION_DIR, openExtensionPage, withExtension } from '../testbed/harness/browser.mjs';
import { fillRelay } from '../testbed/harness/user.mjs';

const version = productVersion();
const messages = (locale) =>
  JSON.parse(readFileSync(join(EXTENSION_DIR, '_locales', locale, 'messages.json'), 'utf8'));
/** A message with its $1.. placeholders filled the way chrome.i18n fills them. */
const expected = (locale, key, ...values) => {
  const { message, placeholders = {} } = messages(locale)[key];
  return message.replace(/\$([A-Z_]+)\$/g, (_, name) => {
    const content = placeholders[name.toLowerCase()].content;
    return values[Number(content.slice(1)) - 1];
  });
};

for (const [lang, locale] of [['en-US', 'en'], ['zh-CN', 'zh_CN']]) {
  test(`popup shows the version and the wasm core's answer in ${locale}`, async (t) => {
    await withExtension(t, { lang }, async (browser) => {
      const popup = await openExtensionPage(browser, 'popup.html');
      assert.equal(await popup.textContent('h1'), expected(locale, 'extName'));
      assert.equal(await popup.textContent('#version'), expected(locale, 'versionLabel', version));
      // Computed by Rust in the service worker: the core's version and the tab's state.
      assert.equal(await popup.textContent('#core'), expected(locale, 'coreLabel', version));
      assert.equal(await popup.textContent('#status'), expected(locale, 'noNotebook'));
      assert.equal(await popup.getAttribute('html', 'lang'), lang);

      // The options page in the same language; a refused field says so in it.
      const options = await openExtensionPage(browser, 'options.html');
      assert.equal(await options.textContent('#relay h2'), expected(locale, 'relayHeading'));
      const errors = await fillRelay(options, { host: 'relay.example.com', port: '70000', user: 'aistudio-tunnel', hostKey: '' });
      const port = errors.find((error) => error.field === 'relay.port');
      // The rule in the page's language: zh_CN's own words, the core's English otherwise.
      const rule = locale === 'en' ? 'a port is a whole number from 1 to 65535' : messages(locale).rule_port.message;
      assert.equal(port.text, expected(locale, 'fieldError', '70000', rule));
    });
  });
}

/** The id Chromium derives from a manifest `key`: SHA-256 of the key, 32 hex digits as a..p. */
const idFromKey = (key) => [...createHash('sha256').update(Buffer.from(key, 'base64')).digest('hex').slice(0, 32)]
  .map((digit) => String.fromCharCode(97 + parseInt(digit, 16))).join('');

test('extension pages reach the worker, which answers through the Rust core', async (t) => {
  await withExtension(t, {}, async (browser) => {
    // The id the helper's native messaging manifest names (aistudio_ssh::native_host) is the
    // one Chromium gives the unpacked build, whatever folder it is loaded from.
    const { key } = JSON.parse(readFileSync(join(EXTENSION_DIR, 'manifest.json'), 'utf8'));
    assert.equal(browser.extensionId, idFromKey(key));
    assert.equal(browser.extensionId, 'nfbfpekjfcnniobpegkajkakabpienla');
    const options = await openExtensionPage(browser, 'options.html');
    assert.equal(await options.textContent('#core'), expected('en', 'coreLabel', version));
    const send = (request) => options.evaluate((r) => chrome.runtime.sendMessage(r), request);
    assert.deepEqual(await send({ kind: 'tabNotebook', tabId: 123456 }), { ok: true, value: null });
    // The sender is an extension page, not an AI Studio frame: no notebook, nothing stored.
    assert.deepEqual(await send({ kind: 'pageOpened' }), { ok: true, value: null });
    const unknown = await send({ kind: 'noSuchKind' });
    assert.equal(unknown.ok, false);
    assert.equal(unknown.error.name, 'UnknownRequest');
  });
});
