// User story, in Firefox: the same extension, built for Firefox, connects my notebook just as
// in Chromium. Debian's Firefox ESR, driven over Marionette; JupyterLab 4 on the simulator.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { eventually } from '../testbed/harness/browser.mjs';
import { launchFirefox } from '../testbed/harness/firefox.mjs';
import {
  helperEnvironment, installHelperForFirefox, scpWith, sha256File, sshWith,
} from '../testbed/harness/helper.mjs';
import { cutTerminalMidCell, ssh } from '../testbed/harness/user.mjs';
import { CONTAINER_USER, SELF_HOSTED_HOST, startSimulator } from '../testbed/simulator/simulator.mjs';

test('Firefox ESR: options, the IDE page during a cold start and the restore, Connect in the popup, then ssh', async (t) => {
  // What a real client saw, in Firefox too: a cold instance (HTML, then 502) before the
  // restore window, the site's own _xsrf beside Jupyter's, and a WebSocket cut under a cell.
  const simulator = await startSimulator({ jupyterlab: '4', restoreSeconds: 5, coldStartSeconds: 3, siteXsrf: true });
  const home = mkdtempSync(join(tmpdir(), 'aistudio-ssh-user-'));
  const sshDir = join(home, '.ssh', `aistudio-${simulator.projectId}`);
  mkdirSync(sshDir, { recursive: true, mode: 0o700 });
  t.after(async () => { await simulator.stop(); rmSync(home, { recursive: true, force: true }); });
  const firefox = await launchFirefox();
  t.after(() => firefox.close());
  const { projectId } = simulator;
  try {
    // The options page talks to the background event page, which hosts the wasm core.
    const options = await firefox.openExtensionPage('options.html');
    assert.match(await firefox.run(() => document.querySelector('#core').textContent), /WebAssembly/);
    await firefox.fill('#relay-form [name=port]', '70000');
    await firefox.click('#relay-form button[type=submit]');
    await eventually(() => firefox.run(() => document.querySelector('#relay-saved').dataset.state ?? null),
      (state) => state === 'invalid', { what: 'the relay refused' });
    assert.match(await firefox.run(() => document.querySelector('[data-field="relay.port"]').textContent), /70000.*1 to 65535/);
    const { host, port, user, hostKey } = simulator.relay;
    for (const [name, value] of Object.entries({ host, port, user, hostKey })) {
      await firefox.fill(`#relay-form [name=${name}]`, String(value));
    }
    await firefox.click('#relay-form button[type=submit]');
    await eventually(() => firefox.run(() => document.querySelector('#relay-saved').dataset.state ?? null),
      (state) => state === 'saved', { what: 'the relay saved' });
    await firefox.fill('#add-project input[name=projectId]', projectId);
    await firefox.click('#add-project button');
    const article = `article[data-project="${projectId}"]`;
    await eventually(() => firefox.run((a) => document.querySelector(`${a} pre.script`)?.textContent ?? '', article),
      (text) => text.includes('AI Studio SSH'), { what: 'the relay script' });
    await firefox.fill(`${article} form.project-settings input[name=sshDir]`, sshDir);
    await firefox.click(`${article} form.project-settings button[type=submit]`);
    const settingsKey = `project:${projectId}:settings`;
    await eventually(() => firefox.run((key) => browser.storage.local.get(key).then((all) => all[key]?.sshDir ?? null), settingsKey),
      (saved) => saved === sshDir, { what: 'the project folder saved' });
    simulator.relay.setUp(await firefox.run((a) => document.querySelector(`${a} pre.script`).textContent, article));

    // The IDE page while AI Studio still restores; the popup for its tab; Connect.
    await firefox.openTab(simulator.ideUrl);
    await firefox.switchTo(options);
    const tabId = await firefox.run((url) => browser.tabs.query({ url }).then((tabs) => tabs[0]?.id), simulator.ideUrl);
    assert.equal(typeof tabId, 'number', 'the IDE tab is visible to the extension');
    await firefox.openExtensionPage(`popup.html?tab=${tabId}`);
    await eventually(() => firefox.run(() => document.querySelector('#status').textContent), (text) => text.includes(projectId),
      { what: 'the notebook in the popup', timeoutMs: 60_000 });
    await firefox.click('#connect');
    await cutTerminalMidCell(simulator);
    const shown = await eventually(() => firefox.run(() => ({
      phase: document.querySelector('#phase').dataset.phase, reason: document.querySelector('#reason').textContent,
      environment: document.querySelector('#environment').textContent,
    })), (s) => s.phase === 'up' || s.phase === 'error', { what: 'tunnel up in Firefox', timeoutMs: 120_000 });
    assert.equal(shown.phase, 'up', shown.reason);
    assert.match(shown.environment, /CPU/);
    const terminals = simulator.webSocketsOpened().filter((path) => path.startsWith('terminals/websocket/'));
    assert.ok(terminals.length >= 2 && terminals.every((path) => path === terminals[0]),
      `the terminal WebSocket reopened: ${terminals}`);

    // The bundle the popup's button downloads (the same request), and ssh with it.
    const reply = await firefox.run((projectId) => browser.runtime.sendMessage({ kind: 'bundle', projectId }), projectId);
    assert.equal(reply.ok, true, JSON.stringify(reply.error));
    for (const file of reply.value) writeFileSync(join(sshDir, file.name), file.text, { mode: 0o600 });
    chmodSync(join(sshDir, 'id_aistudio'), 0o600);
    const out = await ssh(join(sshDir, 'ssh_config'), `aistudio-${projectId}`, 'whoami');
    assert.equal(out.trim(), CONTAINER_USER);
    // The keys are in the extension's IndexedDB: storage.local, which Firefox shows content
    // scripts too, holds none.
    const stored = await firefox.run(() => browser.storage.local.get(null).then((all) => Object.keys(all)));
    assert.deepEqual(stored.filter((key) => key.endsWith(':keys')), []);
    const projects = await firefox.run(() => browser.runtime.sendMessage({ kind: 'listProjects' }));
    assert.deepEqual(projects.value, [projectId]);
  } catch (error) {
    await firefox.screenshot('firefox-failure.png').catch(() => undefined);
    throw new Error(`${error.message}\n--- Firefox log (tail) ---\n${firefox.log().slice(-3000)}`, { cause: error });
  }
});

test('Firefox ESR: a self-hosted server added on a click (permissions.request in the click) is found', async (t) => {
  const simulator = await startSimulator({ jupyterlab: '4' });
  t.after(() => simulator.stop());
  // Firefox's own switch for automation: optional permission requests are granted without
  // the prompt, but still only when asked from a user input handler.
  const firefox = await launchFirefox({ prefs: { 'extensions.webextOptionalPermissionPrompts': false } });
  t.after(() => firefox.close());
  try {
    const options = await firefox.openExtensionPage('options.html');
    await firefox.fill('#self-hosted-form [name=url]', `${simulator.selfHostedBaseUrl}lab`);
    await firefox.fill('#self-hosted-form [name=name]', 'mylab');
    await firefox.fill('#self-hosted-form [name=user]', CONTAINER_USER);
    // Typing had the core check the fields; the click asks the browser at once.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await firefox.click('#self-hosted-form button[type=submit]');
    const outcome = await eventually(() => firefox.run(() => ({
      state: document.querySelector('#self-hosted-status').dataset.state ?? null,
      text: document.querySelector('#self-hosted-status').textContent,
    })), (o) => o.state !== null || /user input/.test(o.text), { what: 'the server added' });
    assert.equal(outcome.state, 'added', outcome.text);
    const origin = `https://${SELF_HOSTED_HOST}/*`;
    assert.deepEqual(await firefox.run(() => browser.permissions.getAll().then((p) => p.origins.sort())),
      [origin, 'https://aistudio.baidu.com/*'].sort());

    // A page of the server opened now gets the registered content script and finds its Jupyter.
    await firefox.openTab(`${simulator.selfHostedBaseUrl}lab`);
    await firefox.switchTo(options);
    const url = `${simulator.selfHostedBaseUrl}lab`;
    const found = await eventually(() => firefox.run(async (url) => {
      const [tab] = await browser.tabs.query({ url: `${url}*` });
      return tab ? (await browser.runtime.sendMessage({ kind: 'tabNotebook', tabId: tab.id })).value : null;
    }, url), (notebook) => Boolean(notebook?.jupyterStarted), { what: 'the self-hosted lab found in Firefox', timeoutMs: 60_000 });
    assert.equal(found.projectId, 'mylab');
    assert.equal(found.baseUrl, simulator.selfHostedBaseUrl);
  } catch (error) {
    await firefox.screenshot('firefox-self-hosted-failure.png').catch(() => undefined);
    throw new Error(`${error.message}\n--- Firefox log (tail) ---\n${firefox.log().slice(-3000)}`, { cause: error });
  }
});

test('Firefox ESR: direct, ssh and scp through the notebook tab with the helper, no relay', async (t) => {
  const simulator = await startSimulator({ jupyterlab: '4' });
  const user = helperEnvironment();
  const home = mkdtempSync(join(tmpdir(), 'aistudio-ssh-user-'));
  const sshDir = join(home, '.ssh', `aistudio-${simulator.projectId}`);
  mkdirSync(sshDir, { recursive: true, mode: 0o700 });
  t.after(async () => {
    await simulator.stop();
    user.remove();
    rmSync(home, { recursive: true, force: true });
  });
  // Firefox reads a user's native messaging hosts in ~/.mozilla: the test's own home.
  assert.match(installHelperForFirefox(home), /native-messaging-hosts/);
  const firefox = await launchFirefox({ env: { ...user.env, HOME: home } });
  t.after(() => firefox.close());
  const { projectId } = simulator;
  const alias = `aistudio-${projectId}`;
  try {
    const options = await firefox.openExtensionPage('options.html');
    const saved = await firefox.run((projectId, sshDir) => browser.runtime.sendMessage({
      kind: 'saveProjectSettings', projectId, settings: { remotePort: 7423, sshDir },
    }), projectId, sshDir);
    assert.deepEqual(saved.value, []);
    await firefox.openTab(simulator.ideUrl);
    await firefox.switchTo(options);
    const tabId = await firefox.run((url) => browser.tabs.query({ url }).then((tabs) => tabs[0]?.id), simulator.ideUrl);
    await firefox.openExtensionPage(`popup.html?tab=${tabId}`);
    await eventually(() => firefox.run(() => document.querySelector('#helper-state').textContent),
      (text) => /helper .* running/.test(text), { what: 'the helper running in the popup', timeoutMs: 60_000 });
    await firefox.click('#connect');
    const shown = await eventually(() => firefox.run(() => ({
      phase: document.querySelector('#phase').dataset.phase, reason: document.querySelector('#reason').textContent,
    })), (s) => s.phase === 'up' || s.phase === 'error', { what: 'the bridge up in Firefox', timeoutMs: 120_000 });
    assert.equal(shown.phase, 'up', shown.reason);

    const reply = await firefox.run((projectId) => browser.runtime.sendMessage({ kind: 'bundle', projectId }), projectId);
    assert.equal(reply.ok, true, JSON.stringify(reply.error));
    assert.deepEqual(reply.value.map((file) => file.name).sort(), ['id_aistudio', 'id_aistudio.pub', 'known_hosts', 'ssh_config']);
    for (const file of reply.value) writeFileSync(join(sshDir, file.name), file.text, { mode: 0o600 });
    const config = join(sshDir, 'ssh_config');
    const ssh = (command) => sshWith(user.env, config, alias, command);
    assert.equal((await ssh('whoami')).trim(), CONTAINER_USER);
    // Firefox's event page opened the lane too.
    assert.match(user.keeperLog(), /an extension opened the lane/);
    // 10 MB each way, equal sha256.
    const up = join(home, 'up.bin');
    writeFileSync(up, randomBytes(10 * 1024 * 1024));
    await scpWith(user.env, config, up, `${alias}:up.bin`);
    assert.equal((await ssh('sha256sum up.bin')).split(' ')[0], sha256File(up));
    const down = join(home, 'down.bin');
    await scpWith(user.env, config, `${alias}:up.bin`, down);
    assert.equal(sha256File(down), sha256File(up));
    // An interactive session left idle past the 30 s after which Firefox suspends an idle
    // event page: it still answers (the open native port keeps the page, or the keeper
    // holds the session until the page is back).
    const session = spawn('ssh', ['-F', config, '-o', 'BatchMode=yes', '-T', alias, 'cat'], { env: user.env });
    t.after(() => session.kill());
    const echo = (line) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no echo of ${line} in 60 s`)), 60_000);
      session.stdout.once('data', (chunk) => { clearTimeout(timer); resolve(String(chunk).trim()); });
      session.stdin.write(`${line}\n`);
    });
    assert.equal(await echo('before the idle'), 'before the idle');
    await new Promise((resolve) => setTimeout(resolve, 40_000));
    assert.equal(await echo('after the idle'), 'after the idle');
    session.kill();
  } catch (error) {
    await firefox.screenshot('firefox-direct-failure.png').catch(() => undefined);
    user.saveLog('firefox-direct');
    throw new Error(`${error.message}\n--- Firefox log (tail) ---\n${firefox.log().slice(-3000)}`, { cause: error });
  }
});
