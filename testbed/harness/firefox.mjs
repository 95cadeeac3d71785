// Debian's Firefox ESR with the built Firefox extension, driven over Marionette, the
// remote protocol built into Firefox (no geckodriver, nothing downloaded). Marionette
// refuses to navigate a tab to moz-extension:// pages, so extension pages are opened the
// way the browser itself opens them: a tab added from the browser's chrome context.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DIST_DIR } from '../../project.mjs';
import { freePort, stopProcessGroup } from '../processes.mjs';
import { ARTIFACTS_DIR, eventually } from './browser.mjs';

export const FIREFOX = '/usr/bin/firefox-esr';
export const FIREFOX_EXTENSION_DIR = join(DIST_DIR, 'firefox');
/** The manifest's gecko id. */
const ADDON_ID = 'aistudio-ssh@aistudio-ssh';
/** Firefox picks a random moz-extension UUID per profile unless told; tests tell it this one. */
const EXTENSION_UUID = '0f6b8c1e-5a43-4d2b-9e7f-aa5e1c2d3b40';

/** Marionette's framing: `<byte length>:<JSON>`, requests `[0, id, name, params]`, replies `[1, id, error, result]`. */
class Marionette {
  constructor(socket) {
    this.socket = socket;
    this.nextId = 1;
    this.pending = new Map();
    this.buffer = Buffer.alloc(0);
    this.greeted = new Promise((resolve) => { this.greet = resolve; });
    socket.on('data', (chunk) => this.receive(chunk));
    socket.on('close', () => {
      for (const { reject } of this.pending.values()) reject(new Error('Marionette connection closed'));
      this.pending.clear();
    });
  }

  receive(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const colon = this.buffer.indexOf(':');
      if (colon < 0) return;
      const length = Number(this.buffer.subarray(0, colon).toString());
      if (this.buffer.length < colon + 1 + length) return;
      const message = JSON.parse(this.buffer.subarray(colon + 1, colon + 1 + length).toString());
      this.buffer = this.buffer.subarray(colon + 1 + length);
      if (!Array.isArray(message)) { this.greet(message); continue; }
      const [, id, error, result] = message;
      const waiter = this.pending.get(id);
      this.pending.delete(id);
      if (error) waiter?.reject(new Error(`${error.error}: ${error.message}`));
      else waiter?.resolve(result);
    }
  }

  send(name, params = {}) {
    const id = this.nextId++;
    const body = Buffer.from(JSON.stringify([0, id, name, params]));
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.write(`${body.length}:`);
      this.socket.write(body);
    });
  }
}

async function connect(port, firefox) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const socket = await new Promise((resolve) => {
      const attempt = net.connect(port, '127.0.0.1', () => resolve(attempt)).on('error', () => resolve(null));
    });
    if (socket) return socket;
    if (Date.now() > deadline || firefox.exitCode !== null) throw new Error('Firefox did not open Marionette');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * Launches Firefox ESR headless with a fresh profile, the Firefox build of the extension
 * installed (temporary add-on, as `about:debugging` installs one) and every host name
 * resolved to loopback (the simulator). `prefs` adds preferences; `env` is the browser's
 * environment (and its native messaging hosts'). Returns a small driver.
 */
export async function launchFirefox({ locale = 'en-US', prefs = {}, env = process.env } = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'aistudio-ssh-firefox-'));
  const port = await freePort();
  writeFileSync(join(profile, 'user.js'), [
    ['extensions.webextensions.uuids', JSON.stringify({ [ADDON_ID]: EXTENSION_UUID })],
    ['intl.locale.requested', locale],
    ['marionette.port', port],
    // The simulator answers for aistudio.baidu.com on loopback.
    ['network.dns.forceResolve', '127.0.0.1'],
    // No Internet here: no update checks, telemetry or first-run pages.
    ['app.update.enabled', false], ['browser.shell.checkDefaultBrowser', false],
    ['datareporting.policy.dataSubmissionEnabled', false], ['toolkit.telemetry.reportingpolicy.firstRun', false],
    ['browser.startup.homepage_override.mstone', 'ignore'], ['browser.aboutwelcome.enabled', false],
    ...Object.entries(prefs),
  ].map(([name, value]) => `user_pref(${JSON.stringify(name)}, ${JSON.stringify(value)});`).join('\n'));
  // `--remote-allow-system-access`: Marionette's chrome context, to open extension pages.
  const firefox = spawn(FIREFOX, ['--headless', '--no-remote', '--profile', profile, '--marionette', '--remote-allow-system-access'], {
    stdio: ['ignore', 'ignore', 'pipe'], detached: true, env: { ...env, MOZ_CRASHREPORTER_DISABLE: '1' },
  });
  let log = '';
  firefox.stderr.on('data', (chunk) => { log = (log + chunk).slice(-20_000); });
  const stop = async () => {
    await stopProcessGroup(firefox.pid);
    rmSync(profile, { recursive: true, force: true });
  };
  try {
    const marionette = new Marionette(await connect(port, firefox));
    await marionette.greeted;
    // The simulator's certificate is self-signed; accepted in this test session only.
    // (Marionette takes the capabilities as the parameters themselves.)
    const session = await marionette.send('WebDriver:NewSession', { acceptInsecureCerts: true });
    if (session.capabilities?.acceptInsecureCerts !== true) throw new Error('Firefox did not accept acceptInsecureCerts');
    await marionette.send('Addon:Install', { path: FIREFOX_EXTENSION_DIR, temporary: true });
    return driver(marionette, stop, () => log);
  } catch (error) {
    await stop();
    throw new Error(`${error.message}\n${log}`);
  }
}

function driver(marionette, stop, log) {
  /** Runs `fn(...args)` in the current tab's page and returns its (awaited) result. */
  const evaluate = async (fn, ...args) => (await marionette.send('WebDriver:ExecuteAsyncScript', {
    script: `const done = arguments[arguments.length - 1];
      Promise.resolve().then(() => (${fn}).apply(null, Array.from(arguments).slice(0, -1)))
        .then((value) => done({ value }), (error) => done({ error: String(error && error.stack || error) }));`,
    args,
  })).value;
  const run = async (fn, ...args) => {
    const outcome = await evaluate(fn, ...args);
    if (outcome?.error) throw new Error(`in the page: ${outcome.error}`);
    return outcome?.value;
  };
  const firefox = {
    extensionUrl: (path) => `moz-extension://${EXTENSION_UUID}/${path}`,
    /** Opens a URL in a new tab (from the browser chrome, so extension pages too) and switches to it. */
    async openTab(url) {
      const before = new Set(await marionette.send('WebDriver:GetWindowHandles'));
      await marionette.send('Marionette:SetContext', { value: 'chrome' });
      try {
        await marionette.send('WebDriver:ExecuteScript', {
          script: `gBrowser.selectedTab = gBrowser.addTab(arguments[0], {
            triggeringPrincipal: Services.scriptSecurityManager.getSystemPrincipal() });`,
          args: [url],
        });
      } finally {
        await marionette.send('Marionette:SetContext', { value: 'content' });
      }
      const handle = (await marionette.send('WebDriver:GetWindowHandles')).find((h) => !before.has(h));
      await marionette.send('WebDriver:SwitchToWindow', { handle });
      return handle;
    },
    /** Opens one of the extension's pages and waits until its script has rendered. */
    async openExtensionPage(path) {
      const handle = await firefox.openTab(firefox.extensionUrl(path));
      await eventually(() => run(() => document.body?.dataset.ready ?? null).catch(() => null), (ready) => ready === 'true',
        { what: `${path} rendered in Firefox` });
      return handle;
    },
    switchTo: (handle) => marionette.send('WebDriver:SwitchToWindow', { handle }),
    run,
    /** Sets a form field as typing does (value, then input and change events). */
    fill: (selector, value) => run((selector, value) => {
      const field = document.querySelector(selector);
      if (!field) throw new Error(`no ${selector}`);
      field.value = value;
      for (const type of ['input', 'change']) field.dispatchEvent(new Event(type, { bubbles: true }));
    }, selector, value),
    /** Clicks an element as the user does (WebDriver's element click: real input events). */
    async click(selector) {
      const element = await marionette.send('WebDriver:FindElement', { using: 'css selector', value: selector });
      await marionette.send('WebDriver:ElementClick', { id: Object.values(element.value ?? element)[0] });
    },
    async screenshot(name) {
      const { value } = await marionette.send('WebDriver:TakeScreenshot', { full: false });
      mkdirSync(ARTIFACTS_DIR, { recursive: true });
      writeFileSync(join(ARTIFACTS_DIR, name), Buffer.from(value, 'base64'));
    },
    log,
    async close() {
      await marionette.send('Marionette:Quit', { flags: ['eForceQuit'] }).catch(() => undefined);
      await stop();
    },
  };
  return firefox;
}
