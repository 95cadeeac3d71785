// Helpers that act as the user does: through the extension's real options page and popup,
// and with the real `ssh` on the files the extension gave them.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eventually, openExtensionPage } from './browser.mjs';

/** Clicks `trigger` and saves the `count` files it downloads into `dir`; returns their paths by name. */
export async function collectDownloads(page, count, trigger, dir) {
  const all = new Promise((resolve) => {
    const downloads = [];
    const collect = (download) => {
      downloads.push(download);
      if (downloads.length === count) { page.off('download', collect); resolve(downloads); }
    };
    page.on('download', collect);
  });
  await trigger();
  const paths = {};
  for (const download of await all) {
    paths[download.suggestedFilename()] = join(dir, download.suggestedFilename());
    await download.saveAs(paths[download.suggestedFilename()]);
  }
  // As a user does after a download: ssh refuses a private key others can read.
  if (paths.id_aistudio) chmodSync(paths.id_aistudio, 0o600);
  return paths;
}

const projectArticle = (page, projectId) => page.locator(`article[data-project="${projectId}"]`);

/** Fills the relay form like a user; returns the field errors it shows (empty when saved). */
export async function fillRelay(options, relay) {
  for (const [name, value] of Object.entries(relay)) await options.fill(`#relay-form [name=${name}]`, String(value));
  await options.click('#relay-form button[type=submit]');
  await options.waitForFunction(() => document.querySelector('#relay-saved')?.dataset.state);
  return options.$$eval('#relay-form [data-field]', (slots) =>
    slots.filter((slot) => slot.textContent).map((slot) => ({ field: slot.dataset.field, text: slot.textContent })));
}

/**
 * The whole setup through the options page: relay, the project (through the relay, with
 * `sshDir` as its folder on "my computer"), and the relay script run on the simulator's relay.
 * Returns the options page and what the relay script printed.
 */
export async function setUpProject(browser, simulator, projectId, sshDir) {
  const options = await openExtensionPage(browser, 'options.html');
  const { host, port, user, hostKey } = simulator.relay;
  const errors = await fillRelay(options, { host, port, user, hostKey });
  if (errors.length) throw new Error(`relay refused: ${JSON.stringify(errors)}`);
  // A project the extension already saw is listed (and was just shown again for the new
  // relay); adding it again would render it once more under the user's hands.
  if (await projectArticle(options, projectId).count() === 0) {
    await options.fill('#add-project input[name=projectId]', projectId);
    await options.click('#add-project button');
  }
  // Once its stored settings are in (a project the extension saw before the relay was set
  // connects directly), the user chooses the relay for it.
  const form = projectArticle(options, projectId).locator('form.project-settings[data-loaded="true"]');
  await form.waitFor({ timeout: 30_000 });
  await form.locator('select[name=route]').selectOption('relay');
  await form.locator('input[name=sshDir]').fill(sshDir);
  await form.locator('button[type=submit]').click();
  const script = projectArticle(options, projectId).locator('pre.script');
  await eventually(() => script.textContent(), (text) => text.includes(`project ${projectId}`), { what: 'the relay script' });
  await projectArticle(options, projectId).locator('details.relay-script summary').click();
  const relayOutput = simulator.relay.setUp(await script.textContent());
  return { options, relayOutput };
}

/** The browser's tab id of `page`, as the extension knows it. */
export async function tabIdOf(browser, page) {
  const helper = await openExtensionPage(browser, 'options.html');
  try {
    return await helper.evaluate(async (url) => (await chrome.tabs.query({ url }))[0]?.id, page.url());
  } finally {
    await helper.close();
  }
}

/** The popup for the tab showing `page` (opened as a page: `popup.html?tab=<id>`). */
export async function openPopup(browser, page) {
  return openExtensionPage(browser, `popup.html?tab=${await tabIdOf(browser, page)}`);
}

/**
 * Waits until the popup shows `phase` (its `data-phase`) with a reason line matching
 * `reason`; returns the popup's texts. An error shown meanwhile fails at once.
 */
export async function popupShows(popup, phase, { timeoutMs = 90_000, reason = /.*/ } = {}) {
  return eventually(
    () => popup.evaluate(() => ({
      phase: document.querySelector('#phase')?.dataset.phase,
      text: document.querySelector('#phase')?.textContent,
      reason: document.querySelector('#reason')?.textContent,
      environment: document.querySelector('#environment')?.textContent,
      command: document.querySelector('#command')?.textContent,
    })),
    (shown) => (shown.phase === phase && reason.test(shown.reason)) || (phase !== 'error' && shown.phase === 'error'),
    { what: `popup phase ${phase}`, timeoutMs },
  ).then((shown) => {
    if (shown.phase !== phase) throw new Error(`popup shows ${shown.phase}: ${shown.text} ${shown.reason}`);
    return shown;
  });
}

/** The notebook's IDE page in a new tab, and the popup for that tab. */
export async function openIdeAndPopup(browser, simulator) {
  const ide = await browser.context.newPage();
  await ide.goto(simulator.ideUrl);
  return { ide, popup: await openPopup(browser, ide) };
}

/**
 * What a user does after the setup: opens the notebook's IDE page, presses Connect in the
 * popup and waits for "Tunnel up". Returns the IDE page, the popup and what it showed.
 */
export async function connectFromPopup(browser, simulator) {
  const { ide, popup } = await openIdeAndPopup(browser, simulator);
  await popup.click('#connect');
  const shown = await popupShows(popup, 'up', { timeoutMs: 120_000 });
  return { ide, popup, shown };
}

const execFileAsync = promisify(execFile);

/** `ssh -F <config> <alias> <command>` as the user runs it: host keys checked strictly. */
export async function ssh(config, alias, command) {
  const { stdout } = await execFileAsync('ssh', ['-F', config, '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=15', alias, command],
    { timeout: 60_000 });
  return stdout;
}

/**
 * The user allowing the extension on a site: the browser's own permission dialog cannot be
 * clicked from Playwright, so the same grant is made where a user can also make it, on
 * chrome://extensions (Site access: "On specific sites", add the site; through the
 * `developerPrivate` calls that page's own controls make), then the setting is put back to
 * "On all sites" (which grants nothing optional). A later `permissions.request` for the
 * site then resolves `true` at once, without a dialog, as after the user's "Allow".
 */
export async function allowSite(browser, originPattern) {
  const settings = await browser.context.newPage();
  try {
    await settings.goto(`chrome://extensions/?id=${browser.extensionId}`);
    await settings.evaluate(async ({ id, site }) => {
      await chrome.developerPrivate.updateExtensionConfiguration({ extensionId: id, hostAccess: 'ON_SPECIFIC_SITES' });
      await chrome.developerPrivate.addHostPermission(id, site);
      await chrome.developerPrivate.updateExtensionConfiguration({ extensionId: id, hostAccess: 'ON_ALL_SITES' });
    }, { id: browser.extensionId, site: originPattern });
  } finally {
    await settings.close();
  }
}

/** What the background knows of the tab showing `page` (the popup's own question). */
export async function tabNotebookOf(browser, page) {
  const tabId = await tabIdOf(browser, page);
  const helper = await openExtensionPage(browser, 'options.html');
  try {
    return await helper.evaluate(async (tabId) => (await chrome.runtime.sendMessage({ kind: 'tabNotebook', tabId })).value, tabId);
  } finally {
    await helper.close();
  }
}

/**
 * Cuts the extension's terminal WebSocket in the middle of a cell: once provisioning put the
 * container's keys in place, the tunnel cell runs (it waits up to 20 s for "up"); returns the
 * number of WebSockets cut.
 */
export async function cutTerminalMidCell(simulator) {
  const keys = simulator.containerPath(`.ssh/aistudio-${simulator.projectId}/relay_ed25519`);
  let cut = 0;
  await eventually(async () => {
    if (existsSync(keys)) cut += simulator.cutWebSockets('terminals/websocket/');
    return cut;
  }, (n) => n > 0, { what: 'the extension\'s terminal WebSocket, mid-cell', timeoutMs: 120_000 });
  return cut;
}

/** A user's directory for the project's files (`~/.ssh/aistudio-<project>` of a temporary home), removed after the test. */
export function userDir(t, projectId) {
  const home = mkdtempSync(join(tmpdir(), 'aistudio-ssh-user-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const sshDir = join(home, '.ssh', `aistudio-${projectId}`);
  mkdirSync(sshDir, { recursive: true, mode: 0o700 });
  return sshDir;
}
