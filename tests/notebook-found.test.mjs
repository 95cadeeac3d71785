// User story: I open my project's notebook on AI Studio; the extension finds its Jupyter
// Server once AI Studio has finished restoring my files (simulator, JupyterLab 3.6 and 4).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventually, notebookSeenByExtension, withExtension } from '../testbed/harness/browser.mjs';
import { RESTORE_BODY, RESTORE_STATUS, startSimulator } from '../testbed/simulator/simulator.mjs';

for (const jupyterlab of ['3.6', '4']) {
  test(`the notebook is found after the restore window (JupyterLab ${jupyterlab})`, async (t) => {
    const simulator = await startSimulator({ jupyterlab, restoreSeconds: 5 });
    t.after(() => simulator.stop());
    await withExtension(t, {}, async (browser) => {
      const page = await browser.context.newPage();
      await page.goto(simulator.ideUrl);
      // AI Studio's restore window: the IDE page says so and Jupyter URLs answer 492.
      assert.match(await page.textContent('#sync-status'), /^(syncing|Unzipping files)$/);
      const during = await page.evaluate(async (base) => {
        const response = await fetch(`${base}api/status`);
        return { status: response.status, body: await response.text() };
      }, simulator.baseUrl);
      assert.deepEqual(during, { status: RESTORE_STATUS, body: RESTORE_BODY });

      // The content script waited it out and told the background the base URL and start time.
      const notebook = await notebookSeenByExtension(browser, simulator.origin);
      assert.equal(notebook.baseUrl, simulator.baseUrl);
      assert.equal(notebook.projectId, simulator.projectId);
      assert.equal(notebook.zone, simulator.zone);
      const status = await page.evaluate(async (base) => (await fetch(`${base}api/status`)).json(), simulator.baseUrl);
      assert.equal(notebook.jupyterStarted, status.started, 'the start time the server itself reports');

      // The IDE page embedded the real lab, same origin, under the base URL.
      await page.waitForFunction(() => document.querySelector('#sync-status')?.textContent === 'ready');
      const lab = await eventually(
        async () => page.frames().find((frame) => frame.url() === `${simulator.baseUrl}lab`),
        Boolean,
        { what: 'the lab iframe' },
      );
      await lab.waitForSelector('.jp-LabShell', { timeout: 30_000 });
    });
  });
}

test('the older <base>notebooks/<name>.ipynb page is found too (JupyterLab 3.6 with nbclassic)', async (t) => {
  const simulator = await startSimulator({ jupyterlab: '3.6', restoreSeconds: 1 });
  t.after(() => simulator.stop());
  const path = await simulator.busyKernel('classic.ipynb');
  await withExtension(t, {}, async (browser) => {
    const page = await browser.context.newPage();
    // Logged in (the IDE page sets the site's cookie) and past the restore window, then the
    // old link, which is itself a Jupyter URL.
    await page.goto(simulator.ideUrl);
    await page.waitForFunction(() => document.querySelector('#sync-status')?.textContent === 'ready');
    await page.goto(`${simulator.baseUrl}notebooks/${path}`);
    await page.waitForSelector('#notebook-container', { timeout: 30_000 });
    const notebook = await notebookSeenByExtension(browser, simulator.origin);
    assert.equal(notebook.baseUrl, simulator.baseUrl);
    assert.equal(notebook.page, 'classicNotebook');
  });
});
