// User story: AI Studio as a real client saw it (the README's "What it meets on AI Studio"):
// a cold instance answering HTML and 502 before its restore window, the
// site's own `_xsrf` beside Jupyter's, WebSockets cut under a running cell, the VS Code IDE
// page with no lab in it, an expired login, `api_serving/<port>/`, a DCU machine and an
// image's missing locale. The extension gets through each, and says what it waits for.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { WebSocketServer } from 'ws';
import { eventually, withExtension } from '../testbed/harness/browser.mjs';
import {
  collectDownloads, cutTerminalMidCell, openIdeAndPopup, popupShows, setUpProject, ssh, userDir,
} from '../testbed/harness/user.mjs';
import { CONTAINER_USER, freePort, startSimulator, stopProcessGroup } from '../testbed/simulator/simulator.mjs';

/** Every phase the popup shows, in order, for as long as it is open. */
async function recordPhases(popup) {
  await popup.evaluate(() => {
    window.phasesSeen = [];
    const note = () => {
      const phase = document.querySelector('#phase')?.dataset.phase;
      if (phase && window.phasesSeen.at(-1) !== phase) window.phasesSeen.push(phase);
    };
    new MutationObserver(note).observe(document.body, { subtree: true, attributes: true, childList: true });
    note();
  });
  return () => popup.evaluate(() => window.phasesSeen);
}

test('a cold start, the site\'s own _xsrf and a WebSocket cut under a running cell: connected all the same (JupyterLab 4)',
  async (t) => {
    const simulator = await startSimulator({ jupyterlab: '4', coldStartSeconds: 4, restoreSeconds: 2, siteXsrf: true });
    t.after(() => simulator.stop());
    const sshDir = userDir(t, simulator.projectId);
    await withExtension(t, {}, async (browser) => {
      await setUpProject(browser, simulator, simulator.projectId, sshDir);
      const { ide, popup } = await openIdeAndPopup(browser, simulator);
      const phases = await recordPhases(popup);
      await popup.click('#connect');

      // Cut the terminal's WebSocket in the middle of a cell: the cells must go on.
      await cutTerminalMidCell(simulator);
      await popupShows(popup, 'up', { timeoutMs: 120_000 });
      const seen = await phases();
      assert.ok(seen.includes('starting'), `the cold start was shown: ${seen}`);
      assert.ok(seen.indexOf('starting') < seen.indexOf('up'), `${seen}`);
      assert.ok(!seen.includes('error'), `no error on the way: ${seen}`);
      // The terminal's WebSocket was opened again (same terminal) after the cut.
      const terminals = simulator.webSocketsOpened().filter((path) => path.startsWith('terminals/websocket/'));
      assert.ok(terminals.length >= 2 && terminals.every((path) => path === terminals[0]),
        `the terminal WebSocket reopened: ${terminals}`);

      // Requests went out with both _xsrf cookies (Jupyter's under the base, the site's on /),
      // and the first value the extension sent was the one Tornado checks: nothing refused.
      const unsafe = simulator.unsafeRequests();
      assert.ok(unsafe.some((r) => r.xsrfCookies === 2), `a request with two _xsrf cookies: ${JSON.stringify(unsafe)}`);
      assert.deepEqual(unsafe.filter((r) => r.refused), [], 'no request refused');

      // The image names en_US.UTF-8, which it does not have: SSH sessions get C.UTF-8, no warning.
      const files = await collectDownloads(popup, 5, () => popup.click('#bundle'), sshDir);
      const out = await ssh(files.ssh_config, `aistudio-${simulator.projectId}`, 'locale 2>&1 >/dev/null; echo "LANG=$LANG"');
      assert.equal(out.trim(), 'LANG=C.UTF-8');
    });
  });

test('the VS Code IDE page (no lab), a DCU machine, an expired login and api_serving (JupyterLab 3.6)', async (t) => {
  const simulator = await startSimulator({ jupyterlab: '3.6', restoreSeconds: 2, ide: 'vscode', accelerator: 'dcu' });
  t.after(() => simulator.stop());
  const sshDir = userDir(t, simulator.projectId);
  await withExtension(t, {}, async (browser) => {
    await setUpProject(browser, simulator, simulator.projectId, sshDir);
    const { ide, popup } = await openIdeAndPopup(browser, simulator);
    await ide.waitForSelector('#vscode-editor');
    assert.equal(ide.frames().length, 1, 'no lab iframe');
    await popup.click('#connect');
    const up = await popupShows(popup, 'up', { timeoutMs: 120_000 });
    assert.match(up.environment, /DCU K100_AI/);
    const files = await collectDownloads(popup, 5, () => popup.click('#bundle'), sshDir);
    assert.equal((await ssh(files.ssh_config, `aistudio-${simulator.projectId}`, 'whoami')).trim(), CONTAINER_USER);

    // The platform picks a terminal's name: one asked for is ignored (the extension asks none).
    const named = await ide.evaluate(async (base) => {
      const xsrf = document.cookie.split('; ').filter((c) => c.startsWith('_xsrf=')).at(-1)?.slice(6) ?? '';
      const headers = { 'content-type': 'application/json', 'X-XSRFToken': xsrf };
      const { name } = await (await fetch(`${base}api/terminals`, { method: 'POST', headers, body: '{"name": "mine"}' })).json();
      await fetch(`${base}api/terminals/${name}`, { method: 'DELETE', headers });
      return name;
    }, simulator.baseUrl);
    assert.notEqual(named, 'mine');

    // The login expires and the page reloads: the popup says to log in, never "failed".
    const phases = await recordPhases(popup);
    simulator.expireLogin();
    await ide.reload();
    await popupShows(popup, 'loggedOut', { timeoutMs: 60_000 });
    assert.match(await popup.textContent('#phase'), /log in/i);
    // Logged in again: the extension notices by itself and the tunnel (never gone) is up.
    simulator.logIn();
    await popupShows(popup, 'up', { timeoutMs: 90_000 });
    assert.ok(!(await phases()).includes('error'), `${await phases()}`);

    // api_serving/<port>/: a web service of the user's, with the project cookies of the IDE
    // page, the path %-decoded once, non-ASCII refused, the query dropped.
    const port = await freePort();
    const served = mkdtempSync(join(tmpdir(), 'aistudio-ssh-served-'));
    t.after(() => rmSync(served, { recursive: true, force: true }));
    writeFileSync(join(served, 'hello world.txt'), 'hello from the container\n');
    const server = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', served],
      { stdio: 'ignore', detached: true });
    t.after(() => stopProcessGroup(server.pid));
    const base = simulator.baseUrl;
    const fetched = await eventually(() => ide.evaluate(async (url) => {
      const answer = await fetch(url, { credentials: 'same-origin' });
      return { status: answer.status, text: await answer.text() };
    }, `${base}api_serving/${port}/hello%20world.txt?ignored=1`), (r) => r.status === 200, { what: 'api_serving' });
    assert.equal(fetched.text, 'hello from the container\n');
    const nonAscii = await ide.evaluate(async (url) => (await fetch(url)).status, `${base}api_serving/${port}/%E4%BD%A0.txt`);
    assert.equal(nonAscii, 400);
    const withoutCookies = await ide.evaluate(async (url) => (await fetch(url, { credentials: 'omit' })).status,
      `${base}api_serving/${port}/hello%20world.txt`);
    assert.equal(withoutCookies, 403, 'no cookies, no service');

    // Its WebSockets are cut within about 2-3 s.
    const wsPort = await freePort();
    const wss = new WebSocketServer({ port: wsPort, host: '127.0.0.1' });
    t.after(() => wss.close());
    const lasted = await ide.evaluate((url) => new Promise((resolve) => {
      const opened = Date.now();
      const socket = new WebSocket(url);
      socket.onopen = () => { window.wsOpened = Date.now(); };
      socket.onclose = () => resolve(window.wsOpened ? Date.now() - window.wsOpened : -(Date.now() - opened));
    }), `${base.replace('https:', 'wss:')}api_serving/${wsPort}/`);
    assert.ok(lasted > 1_500 && lasted < 4_500, `the api_serving WebSocket lasted ${lasted} ms`);
  });
});
