// User story: my private keys stay where only the extension itself reads them. No web page,
// nor the extension's own content script running in it, can read them; keys are made only for
// a notebook whose Jupyter answered (or that I added); and the keys an earlier version kept
// in storage.local move to the new place unchanged when the extension updates.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { test } from 'node:test';
import { eventually, newProfileDir, notebookSeenByExtension, openExtensionPage, withExtension } from '../testbed/harness/browser.mjs';
import { extensionStorage, keepKeysTheOldWay, readFromContentScript } from '../testbed/harness/storage.mjs';
import { fillRelay, openPopup, popupShows } from '../testbed/harness/user.mjs';
import { startSimulator } from '../testbed/simulator/simulator.mjs';

/** storage.local entries that hold keys the old way. */
const legacyKeyEntries = (local) => Object.keys(local).filter((key) => key.endsWith(':keys'));

test('keys wait for a notebook whose Jupyter answers, and its page\'s content script cannot read them', async (t) => {
  // Long enough to look around while AI Studio still answers 492 for the notebook's Jupyter.
  const simulator = await startSimulator({ jupyterlab: '4', restoreSeconds: 20 });
  t.after(() => simulator.stop());
  await withExtension(t, {}, async (browser) => {
    const options = await openExtensionPage(browser, 'options.html');
    const { host, port, user, hostKey } = simulator.relay;
    assert.deepEqual(await fillRelay(options, { host, port, user, hostKey }), []);
    await options.close();

    // The notebook's page during the restore: its URL is notebook-shaped, its Jupyter does not
    // answer yet. The content script reported the page and the restore, the popup shows it.
    const ide = await browser.context.newPage();
    await ide.goto(simulator.ideUrl);
    const popup = await openPopup(browser, ide);
    await popupShows(popup, 'restoring', { timeoutMs: 15_000 });
    const before = await extensionStorage(browser);
    assert.match(await ide.textContent('#sync-status'), /^(syncing|Unzipping files)$/, 'still restoring');
    assert.deepEqual(before.projects, [], 'no project has keys');
    assert.deepEqual(before.keysDatabase, {});
    assert.deepEqual(legacyKeyEntries(before.local), []);

    // Jupyter answers: the project has its three keys now, in the extension's IndexedDB only.
    await notebookSeenByExtension(browser, simulator.origin);
    const after = await extensionStorage(browser);
    assert.deepEqual(after.projects, [simulator.projectId]);
    const record = after.keysDatabase[simulator.projectId];
    for (const role of ['client', 'containerRelay', 'containerHost']) assert.match(record[role].privateKey, /PRIVATE KEY/, role);
    assert.deepEqual(legacyKeyEntries(after.local), []);

    // What the extension's content script could read on that page (the IDE page and the lab
    // in its iframe), as a compromised renderer of an AI Studio page could: no private key.
    const lab = await eventually(async () => ide.frames().find((frame) => frame.url() === `${simulator.baseUrl}lab`), Boolean,
      { what: 'the lab iframe' });
    await lab.waitForSelector('.jp-LabShell', { timeout: 30_000 });
    const read = await eventually(() => readFromContentScript(ide, browser.extensionId), (worlds) => worlds.length === 2,
      { what: 'the content script in both frames' });
    assert.deepEqual(read.map((world) => world.location).sort(), [`${simulator.baseUrl}lab`, simulator.ideUrl].sort());
    for (const world of read) {
      assert.equal(world.runtimeId, browser.extensionId, 'ran in the content script\'s world');
      assert.doesNotMatch(JSON.stringify(world), /PRIVATE KEY/, `readable from ${world.location}`);
      // Chromium hides storage.local (settings, status) from content scripts too.
      assert.match(String(world['storage.local']), /^refused/, JSON.stringify(world['storage.local']).slice(0, 200));
      assert.deepEqual(world.projectKeys?.error?.name, 'Forbidden', JSON.stringify(world.projectKeys));
    }
  });
});

test('keys an earlier version kept in storage.local move to IndexedDB unchanged', async (t) => {
  const profile = newProfileDir();
  t.after(() => rmSync(profile, { recursive: true, force: true }));
  const projectId = '7892508';
  const fingerprints = (page) => page.locator(`article[data-project="${projectId}"] dd[data-key]`).allTextContents();

  let shown;
  let legacy;
  await withExtension(t, { profile }, async (browser) => {
    const options = await openExtensionPage(browser, 'options.html');
    await options.fill('#add-project input[name=projectId]', projectId);
    await options.click('#add-project button');
    await options.locator(`article[data-project="${projectId}"]`).waitFor();
    shown = await fingerprints(options);
    // Kept as an earlier version kept it: a `project:<id>:keys` record in storage.local.
    legacy = await keepKeysTheOldWay(browser, projectId);
    assert.match(legacy.client.privateKey, /PRIVATE KEY/);
    const old = await extensionStorage(browser);
    assert.deepEqual(old.local[`project:${projectId}:keys`], legacy);
    assert.deepEqual(old.keysDatabase, {});
  });

  // The updated extension starts (a new browser on the same profile): the keys moved, unchanged.
  await withExtension(t, { profile }, async (browser) => {
    const options = await openExtensionPage(browser, 'options.html');
    await options.locator(`article[data-project="${projectId}"]`).waitFor();
    await eventually(() => fingerprints(options), (now) => now.every((text) => text.startsWith('SHA256:')),
      { what: 'the fingerprints shown' });
    assert.deepEqual(await fingerprints(options), shown, 'the same keys');
    const moved = await extensionStorage(browser);
    assert.deepEqual(legacyKeyEntries(moved.local), [], 'storage.local no longer holds keys');
    assert.deepEqual(moved.keysDatabase, { [projectId]: legacy });
    assert.deepEqual(moved.projects, [projectId]);
  });
});
