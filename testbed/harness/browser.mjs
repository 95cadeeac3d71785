// Debian Chromium with the built extension loaded, driven by playwright-core (never a downloaded browser).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { DIST_DIR, ROOT } from '../../project.mjs';
import { AISTUDIO_HOST, SELF_HOSTED_HOST } from '../simulator/simulator.mjs';

export const CHROMIUM = '/usr/bin/chromium';
export const EXTENSION_DIR = join(DIST_DIR, 'chromium');
export const ARTIFACTS_DIR = join(ROOT, 'test-results');

/**
 * Launches Chromium with a fresh profile and the unpacked extension from dist/chromium.
 * @param {{ lang?: string, profile?: string, headless?: boolean, env?: NodeJS.ProcessEnv,
 *   prepareProfile?: (profile: string) => void }} options `lang` is the browser UI
 *   language (`--lang`), which chrome.i18n follows; `profile` reuses a profile directory (kept on
 *   close), to test what survives a browser restart; `headless` defaults to true; `env` is the
 *   browser's environment (and so its native messaging hosts'); `prepareProfile` writes into the
 *   profile before the browser starts (a native messaging host's manifest).
 * @returns {Promise<{ context: import('playwright-core').BrowserContext, extensionId: string, close: () => Promise<void> }>}
 */
export async function launchWithExtension({
  lang = 'en-US', profile: reused, headless = true, env = process.env, prepareProfile = () => {},
} = {}) {
  const profile = reused ?? newProfileDir();
  prepareProfile(profile);
  const removeProfile = () => reused || rmSync(profile, { recursive: true, force: true });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless,
    // Playwright disables extensions by default.
    ignoreDefaultArgs: ['--disable-extensions'],
    args: chromiumArgs(lang),
    // The simulator's certificate is self-signed; accepted in test profiles only.
    ignoreHTTPSErrors: true,
    // Our callers close the browser and stop the servers they started; Playwright's own
    // signal handlers would exit the process before they could.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    env: { ...env, LANGUAGE: lang.replace('-', '_') },
  });
  try {
    const { worker, extensionId } = await extensionWorker(context);
    // Let a re-used profile's worker finish starting before pages talk to it.
    await worker.evaluate(() => globalThis.aistudioSsh?.core);
    return {
      context,
      extensionId,
      close: async () => {
        await context.close();
        removeProfile();
      },
    };
  } catch (error) {
    await context.close();
    removeProfile();
    throw error;
  }
}

/**
 * The extension's service worker in `context` (waited for while it starts) and the id it runs under.
 * @param {import('playwright-core').BrowserContext} context
 */
async function extensionWorker(context) {
  const worker = context.serviceWorkers()[0] ?? (await context.waitForEvent('serviceworker', { timeout: 20_000 }));
  return { worker, extensionId: new URL(worker.url()).host };
}

/** Chromium's switches for a test browser with the built extension, in `lang`. */
function chromiumArgs(lang) {
  return [
    `--load-extension=${EXTENSION_DIR}`,
    `--disable-extensions-except=${EXTENSION_DIR}`,
    `--lang=${lang}`,
    // Root in CI: Chromium's sandbox refuses to start as root.
    ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
    // This machine has no Internet: stop Chromium reaching for Google's services.
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--disable-quic', '--no-first-run', '--disable-gpu',
    // The AI Studio simulator: the real host name, answered on loopback (testbed/simulator),
    // and the same container as a self-hosted server on another origin.
    `--host-resolver-rules=MAP ${AISTUDIO_HOST} 127.0.0.1,MAP ${SELF_HOSTED_HOST} 127.0.0.1`,
  ];
}

/**
 * Chromium with the extension, started by us (headless, a fresh profile) and driven over
 * the DevTools protocol only while attached: `detach()` leaves it running with no debugger,
 * as a user's browser runs, and `attach()` takes it up again. A debugger costs a lot where
 * bytes move: Playwright has every page's and worker's network events sent to it, WebSocket
 * frames with their payloads (base64). For `npm run bench`, which measures what users get.
 * @param {{ env?: NodeJS.ProcessEnv, prepareProfile?: (profile: string) => void }} options
 */
export async function launchDetachable({ env = process.env, prepareProfile = () => {} } = {}) {
  const { spawn } = await import('node:child_process');
  const { freePort, stopProcessGroup } = await import('../processes.mjs');
  const profile = newProfileDir();
  prepareProfile(profile);
  const port = await freePort();
  const child = spawn(CHROMIUM, [
    ...chromiumArgs('en-US'), '--headless', `--user-data-dir=${profile}`, `--remote-debugging-port=${port}`,
    // The simulator's certificate is self-signed (what ignoreHTTPSErrors does under Playwright).
    '--ignore-certificate-errors', 'about:blank',
  ], { env: { ...env, LANGUAGE: 'en_US' }, stdio: 'ignore', detached: true });
  const handle = {
    context: /** @type {import('playwright-core').BrowserContext} */ (null),
    extensionId: '',
    /** @type {import('playwright-core').Browser | null} */
    connection: null,
    async attach() {
      const deadline = Date.now() + 20_000;
      for (;;) {
        try {
          this.connection = await chromium.connectOverCDP(`http://127.0.0.1:${port}`);
          break;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
      [this.context] = this.connection.contexts();
      ({ extensionId: this.extensionId } = await extensionWorker(this.context));
    },
    /** Disconnects the debugger; pages, tabs and the extension go on. */
    async detach() {
      await this.connection?.close();
      this.connection = null;
    },
    async close() {
      await this.detach().catch(() => {});
      await stopProcessGroup(child.pid);
      rmSync(profile, { recursive: true, force: true });
    },
  };
  try {
    await handle.attach();
  } catch (error) {
    await handle.close();
    throw error;
  }
  return handle;
}

/** A new empty browser profile directory; the caller removes it. */
export const newProfileDir = () => mkdtempSync(join(tmpdir(), 'aistudio-ssh-profile-'));

/**
 * Runs `body` with a launched browser; on failure saves a screenshot of every open page
 * under test-results/ (the CI artifacts) before closing the browser.
 * @template T
 * @param {import('node:test').TestContext} t
 * @param {{ lang?: string }} options
 * @param {(browser: Awaited<ReturnType<typeof launchWithExtension>>) => Promise<T>} body
 */
export async function withExtension(t, options, body) {
  const browser = await launchWithExtension(options);
  try {
    return await body(browser);
  } catch (error) {
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    const slug = t.name.replace(/[^a-zA-Z0-9]+/g, '-').slice(0, 80);
    for (const [index, page] of browser.context.pages().entries()) {
      await page.screenshot({ path: join(ARTIFACTS_DIR, `${slug}-${index}.png`) }).catch(() => {});
    }
    throw error;
  } finally {
    await browser.close();
  }
}

/** Opens one of the extension's pages in a tab and waits until its script has rendered. */
export async function openExtensionPage(browser, path) {
  const page = await browser.context.newPage();
  await page.goto(`chrome-extension://${browser.extensionId}/${path}`);
  await page.waitForSelector('body[data-ready="true"]', { timeout: 15_000 });
  return page;
}

/**
 * Polls `probe` until `done(value)` holds; returns that value.
 * @template T
 * @param {() => Promise<T>} probe
 * @param {(value: T) => boolean} done
 */
export async function eventually(probe, done, { timeoutMs = 30_000, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what} not reached in ${timeoutMs} ms; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/**
 * What the extension's background knows of the (first) tab showing `origin`, asked the way
 * the popup asks; waits until it knows the Jupyter start time.
 */
export async function notebookSeenByExtension(browser, origin) {
  const page = await openExtensionPage(browser, 'options.html');
  try {
    return await eventually(
      () => page.evaluate(async (origin) => {
        const [tab] = await chrome.tabs.query({ url: `${origin}/*` });
        return tab && (await chrome.runtime.sendMessage({ kind: 'tabNotebook', tabId: tab.id })).value;
      }, origin),
      (value) => Boolean(value?.jupyterStarted),
      { what: 'the Jupyter start time in the background', timeoutMs: 60_000 },
    );
  } finally {
    await page.close();
  }
}
