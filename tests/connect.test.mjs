// User story: I fill in my relay once, run the script it prints on the relay, open my
// notebook, and `ssh aistudio-<project>` works with strict host key checking, even
// while my notebook's kernel is busy; my container's keys and cells are visible to me.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ARTIFACTS_DIR, eventually, openExtensionPage, withExtension } from '../testbed/harness/browser.mjs';
import {
  collectDownloads, fillRelay, openPopup, popupShows, setUpProject, ssh,
} from '../testbed/harness/user.mjs';
import { CONTAINER_USER, startSimulator } from '../testbed/simulator/simulator.mjs';

/** What a page script may try: post messages and dispatch events the content script might heed. */
async function actHostile(page) {
  await page.evaluate(() => {
    const plan = { action: 'connect', cells: [{ step: 'provision', source: '%%bash\ntouch /tmp/hostile' }] };
    for (const message of [{ kind: 'run', plan }, { kind: 'connect' }, 'connect']) window.postMessage(message, '*');
    for (const name of ['aistudio-ssh:connect', 'message', 'connect']) document.dispatchEvent(new CustomEvent(name, { detail: plan }));
  });
}

/** Every regular file under `dir`, at any depth. */
const filesUnder = (dir) => readdirSync(dir, { recursive: true })
  .map((relative) => join(dir, relative))
  .filter((path) => lstatSync(path).isFile());

for (const jupyterlab of ['3.6', '4']) {
  test(`connect from the notebook page to a working ssh (JupyterLab ${jupyterlab})`, async (t) => {
    const simulator = await startSimulator({ jupyterlab, restoreSeconds: 8 });
    const home = mkdtempSync(join(tmpdir(), 'aistudio-ssh-user-'));
    const sshDir = join(home, '.ssh', `aistudio-${simulator.projectId}`);
    mkdirSync(sshDir, { recursive: true, mode: 0o700 });
    t.after(async () => { await simulator.stop(); rmSync(home, { recursive: true, force: true }); });
    // The user's open notebook is busy for ten minutes.
    await simulator.busyKernel();

    await withExtension(t, {}, async (browser) => {
      // Options: a wrong relay is refused field by field, nothing saved; then the right one.
      const first = await openExtensionPage(browser, 'options.html');
      const errors = await fillRelay(first, { host: 'relay..example', port: '70000', user: 'root;id', hostKey: 'ssh-ed25519 AAAA' });
      assert.deepEqual(errors.map((e) => e.field).sort(), ['relay.host', 'relay.hostKey', 'relay.port', 'relay.user']);
      assert.match(errors.find((e) => e.field === 'relay.port').text, /70000.*1 to 65535/);
      assert.equal((await first.evaluate(() => chrome.storage.local.get('relay'))).relay, undefined, 'nothing saved');
      await first.close();
      const { options, relayOutput } = await setUpProject(browser, simulator, simulator.projectId, sshDir);
      assert.match(relayOutput, new RegExp(`project ${simulator.projectId}`));

      // The IDE page, during AI Studio's restore window; Connect is clicked at once.
      const ide = await browser.context.newPage();
      await ide.goto(simulator.ideUrl);
      await actHostile(ide);
      const popup = await openPopup(browser, ide);
      await eventually(() => popup.textContent('#status'), (text) => text.includes(simulator.projectId), { what: 'the notebook in the popup' });
      await popup.click('#connect');
      const up = await popupShows(popup, 'up', { timeoutMs: 120_000 });
      assert.match(up.environment, /CPU/);
      assert.equal(up.command, `ssh aistudio-${simulator.projectId}`);
      // The toolbar badge of the notebook's tab says so too.
      const badge = await popup.evaluate(async () => chrome.action.getBadgeText({
        tabId: Number(new URLSearchParams(location.search).get('tab')),
      }));
      assert.equal(badge, 'on');

      // The user's own notebook kernel was busy all along, and the extension's kernel is gone.
      await eventually(() => simulator.kernelStates(), (states) => states.length === 1 && states[0] === 'busy',
        { what: 'only the busy notebook kernel left' });
      // It closes its terminal right after the probe's report that turned the popup to "up".
      await eventually(() => simulator.terminalNames(), (names) => names.length === 0,
        { what: 'the extension closed its terminal', timeoutMs: 10_000 });
      // Its shell kept no history: the typed lines carry the container's keys.
      assert.equal(existsSync(simulator.containerPath('.bash_history')), false, 'no ~/.bash_history');

      // The bundle, downloaded from the popup, is all ssh needs: no host key prompt, strict checking.
      const files = await collectDownloads(popup, 5, () => popup.click('#bundle'), sshDir);
      assert.deepEqual(Object.keys(files).sort(), ['id_aistudio', 'id_aistudio.pub', 'known_hosts', 'relay-setup.sh', 'ssh_config']);
      const out = await ssh(files.ssh_config, `aistudio-${simulator.projectId}`, 'whoami; echo "$HOME"');
      assert.equal(out.split('\n')[0], CONTAINER_USER);
      // Without a passphrase the popup says where that unencrypted key belongs; with one typed
      // there, the bundle's id_aistudio opens with that passphrase only.
      const note = await popup.textContent('#bundle-note', { timeout: 5_000 });
      assert.match(note, new RegExp(`Downloads.*~/\\.ssh/aistudio-${simulator.projectId}/`));
      const passphrase = 'correct horse 电池';
      const lockedDir = join(home, 'locked');
      mkdirSync(lockedDir, { mode: 0o700 });
      await popup.fill('#bundle-passphrase', passphrase, { timeout: 5_000 });
      const locked = await collectDownloads(popup, 5, () => popup.click('#bundle'), lockedDir);
      assert.deepEqual(Object.keys(locked).sort(), Object.keys(files).sort());
      assert.throws(() => execFileSync('ssh-keygen', ['-y', '-P', 'wrong', '-f', locked.id_aistudio], { stdio: 'pipe' }));
      const opened = execFileSync('ssh-keygen', ['-y', '-P', passphrase, '-f', locked.id_aistudio], { encoding: 'utf8' });
      assert.equal(opened.split(' ')[1], readFileSync(files['id_aistudio.pub'], 'utf8').split(' ')[1]);

      // A second project on the same relay gets its own relay port and host alias, and the
      // first one's ssh keeps working after the relay script ran again for the second.
      const second = '8000001';
      const secondDir = join(home, '.ssh', `aistudio-${second}`);
      mkdirSync(secondDir, { recursive: true, mode: 0o700 });
      const { options: secondOptions } = await setUpProject(browser, simulator, second, secondDir);
      const secondArticle = secondOptions.locator(`article[data-project="${second}"]`);
      assert.equal(await secondArticle.locator('input[name=remotePort]').inputValue(), '7424');
      const secondFiles = await collectDownloads(secondOptions, 5, () => secondArticle.locator('button.bundle').click(), secondDir);
      const secondConfig = readFileSync(secondFiles.ssh_config, 'utf8');
      assert.match(secondConfig, new RegExp(`^Host aistudio-${second}$`, 'm'));
      assert.match(secondConfig, /^ {4}Port 7424$/m);
      assert.doesNotMatch(secondConfig, new RegExp(simulator.projectId));
      assert.equal((await ssh(files.ssh_config, `aistudio-${simulator.projectId}`, 'whoami')).trim(), CONTAINER_USER);
      await secondOptions.close();

      // The cells are visible: the companion notebook opens in the lab with the three cells.
      const cells = await browser.context.newPage();
      await cells.goto(`${simulator.baseUrl}lab/tree/work/aistudio-ssh.ipynb`);
      await cells.waitForFunction(() => document.querySelectorAll('.jp-Notebook .jp-Cell').length === 4, null, { timeout: 60_000 });
      mkdirSync(ARTIFACTS_DIR, { recursive: true });
      await cells.screenshot({ path: join(ARTIFACTS_DIR, `companion-notebook-jupyterlab-${jupyterlab}.png`) });
      const sources = await cells.$$eval('.jp-Notebook .jp-Cell .jp-InputArea-editor', (editors) => editors.map((e) => e.textContent));
      assert.match(sources[1], /%%bash/);

      // Disconnect: the tunnel stops and ssh no longer reaches the container.
      await popup.click('#disconnect');
      await popupShows(popup, 'disconnected');
      await assert.rejects(ssh(files.ssh_config, `aistudio-${simulator.projectId}`, 'true'));
      // Nothing the page posted or dispatched ran anything.
      assert.equal(existsSync('/tmp/hostile'), false);
      await options.close();

      // No private key in the container's ~/work (kept across restarts and stored by AI Studio
      // with the project): not in the companion notebook, its replaced copies, nor anywhere else.
      const withPrivateKeys = filesUnder(simulator.containerPath('work'))
        .filter((path) => readFileSync(path, 'latin1').includes('PRIVATE KEY'));
      assert.deepEqual(withPrivateKeys, [], 'files under ~/work holding a private key');
    });
  });
}
