// User story: besides AI Studio, I run a JupyterLab of my own. I add its address in the
// options, allow the extension on that one site, and `ssh aistudio-<name>` reaches it the
// same way; removing it gives the site back.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { eventually, openExtensionPage, withExtension } from '../testbed/harness/browser.mjs';
import {
  allowSite, collectDownloads, openPopup, popupShows, setUpProject, ssh, tabNotebookOf,
} from '../testbed/harness/user.mjs';
import { CONTAINER_USER, SELF_HOSTED_HOST, startSimulator } from '../testbed/simulator/simulator.mjs';

const ORIGIN_PATTERN = `https://${SELF_HOSTED_HOST}/*`;

/** Fills the self-hosted form and presses Add; resolves with the status state and the field errors shown. */
async function addServer(options, { url, name, user }) {
  await options.fill('#self-hosted-form [name=url]', url);
  await options.fill('#self-hosted-form [name=name]', name);
  await options.fill('#self-hosted-form [name=user]', user);
  await options.evaluate(() => {
    for (const slot of document.querySelectorAll('#self-hosted-status, #self-hosted-form [data-field]')) slot.textContent = '';
  });
  await options.click('#self-hosted-form button[type=submit]');
  await options.waitForFunction(() => {
    const status = document.querySelector('#self-hosted-status');
    const errors = [...document.querySelectorAll('#self-hosted-form [data-field]')].some((slot) => slot.textContent);
    return status.dataset.state || (errors && status.textContent === '');
  });
  return options.evaluate(() => ({
    state: document.querySelector('#self-hosted-status').dataset.state ?? null,
    errors: [...document.querySelectorAll('#self-hosted-form [data-field]')]
      .filter((slot) => slot.textContent).map((slot) => slot.dataset.field),
  }));
}

const registeredMatches = (options) => options.evaluate(async () =>
  (await chrome.scripting.getRegisteredContentScripts()).flatMap((script) => script.matches));

test('a self-hosted Jupyter server: added in the options, allowed, connected, removed', async (t) => {
  const simulator = await startSimulator({ jupyterlab: '4' });
  const home = mkdtempSync(join(tmpdir(), 'aistudio-ssh-user-'));
  const sshDir = join(home, '.ssh', 'aistudio-mylab');
  mkdirSync(sshDir, { recursive: true, mode: 0o700 });
  t.after(async () => { await simulator.stop(); rmSync(home, { recursive: true, force: true }); });
  const labUrl = `${simulator.selfHostedBaseUrl}lab/tree/work`;

  await withExtension(t, {}, async (browser) => {
    // Before it is added, the server's pages are none of the extension's business.
    const lab = await browser.context.newPage();
    await lab.goto(labUrl);
    await lab.waitForSelector('.jp-LabShell', { timeout: 60_000 });
    const options = await openExtensionPage(browser, 'options.html');
    assert.equal(await tabNotebookOf(browser, lab), null, 'no content script before the site is added');
    assert.deepEqual(await registeredMatches(options), []);

    // Wrong input is refused field by field, and nothing is asked or stored.
    const refused = await addServer(options, { url: `http://${SELF_HOSTED_HOST}/lab`, name: '7892508', user: 'Root' });
    assert.equal(refused.state, null);
    assert.deepEqual(refused.errors, ['selfHosted.url', 'selfHosted.name', 'selfHosted.user']);
    assert.match(await options.textContent('[data-field="selfHosted.url"]'), /plain http only on localhost/);
    assert.equal((await options.evaluate(() => chrome.storage.local.get('selfHosted'))).selfHosted, undefined);

    // The user allows the site; the server is added from a page address and its content
    // script registered for that origin only.
    await allowSite(browser, ORIGIN_PATTERN);
    const added = await addServer(options, { url: labUrl, name: 'mylab', user: CONTAINER_USER });
    assert.deepEqual(added, { state: 'added', errors: [] });
    const item = options.locator('#self-hosted-list li[data-server="mylab"]');
    assert.equal(await item.getAttribute('data-granted'), 'true');
    assert.match(await item.textContent(), new RegExp(`aistudio-mylab: ${simulator.selfHostedBaseUrl}`));
    assert.deepEqual(await registeredMatches(options), [ORIGIN_PATTERN]);

    // The page already open got the content script at once, and found its Jupyter.
    const seen = await eventually(() => tabNotebookOf(browser, lab), (notebook) => Boolean(notebook?.jupyterStarted),
      { what: 'the open lab page found' });
    assert.equal(seen.projectId, 'mylab');
    assert.equal(seen.baseUrl, simulator.selfHostedBaseUrl);
    assert.equal(seen.page, 'lab');

    // Same relay setup as for an AI Studio project, then Connect in the popup.
    await setUpProject(browser, simulator, 'mylab', sshDir);
    const popup = await openPopup(browser, lab);
    await popup.click('#connect');
    const up = await popupShows(popup, 'up', { timeoutMs: 120_000 });
    assert.equal(up.command, 'ssh aistudio-mylab');
    const files = await collectDownloads(popup, 5, () => popup.click('#bundle'), sshDir);
    const config = readFileSync(files.ssh_config, 'utf8');
    assert.match(config, /^Host aistudio-mylab$/m);
    assert.match(config, new RegExp(`^ {4}User ${CONTAINER_USER}$`, 'm'));
    const out = await ssh(files.ssh_config, 'aistudio-mylab', 'whoami; hostname');
    assert.equal(out.split('\n')[0], CONTAINER_USER);

    // A page opened later gets the registered content script (not the one-off injection).
    const second = await browser.context.newPage();
    await second.goto(`${simulator.selfHostedBaseUrl}lab`);
    const again = await eventually(() => tabNotebookOf(browser, second), (notebook) => Boolean(notebook?.jupyterStarted),
      { what: 'a new lab page found' });
    assert.equal(again.projectId, 'mylab');

    await popup.click('#disconnect');
    await popupShows(popup, 'disconnected');

    // Removing the server gives the site back and unregisters the content script.
    await item.locator('button').click();
    await options.locator('#self-hosted-list li').first().waitFor({ state: 'detached' });
    assert.equal(await options.evaluate((origin) => chrome.permissions.contains({ origins: [origin] }), ORIGIN_PATTERN), false);
    assert.deepEqual(await eventually(() => registeredMatches(options), (matches) => matches.length === 0,
      { what: 'the content script unregistered' }), []);
  });
});
