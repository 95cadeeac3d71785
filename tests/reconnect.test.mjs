// User story: once connected, `ssh aistudio-<project>` keeps working through an
// environment restart and a CPU -> GPU switch with the files I downloaded once (no host
// key warning, strict checking), the extension reconnecting by itself; the cells in
// ~/work/aistudio-ssh.ipynb, which hold no private key, run by hand while the extension's
// keys are in the container, and say what is missing after a restart cleared them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { eventually, withExtension } from '../testbed/harness/browser.mjs';
import {
  collectDownloads, connectFromPopup, popupShows, setUpProject, ssh, userDir,
} from '../testbed/harness/user.mjs';
import { startSimulator } from '../testbed/simulator/simulator.mjs';

test('ssh keeps working through a restart, cells run by hand and a CPU -> GPU switch (JupyterLab 3.6)', async (t) => {
  const simulator = await startSimulator({ jupyterlab: '3.6', restoreSeconds: 4 });
  t.after(() => simulator.stop());
  const sshDir = userDir(t, simulator.projectId);
  const alias = `aistudio-${simulator.projectId}`;

  await withExtension(t, {}, async (browser) => {
    const { options } = await setUpProject(browser, simulator, simulator.projectId, sshDir);
    const { ide, popup } = await connectFromPopup(browser, simulator);
    const files = await collectDownloads(popup, 5, () => popup.click('#bundle'), sshDir);
    assert.equal((await ssh(files.ssh_config, alias, 'whoami')).trim(), 'aistudio');

    // The first successful connect turned auto-connect on.
    await options.reload();
    await options.waitForSelector('body[data-ready="true"]');
    assert.equal(await options.isChecked('#auto-connect'), true);

    // Restart: a new container (tunnel gone, ~/.ssh cleared). The companion notebook holds no
    // private key (~/work persists and is shared), so run by hand it says where the keys went
    // and starts nothing.
    await simulator.restart();
    await assert.rejects(ssh(files.ssh_config, alias, 'true'), 'no tunnel right after a restart');
    assert.throws(() => simulator.runNotebookByHand('work/aistudio-ssh.ipynb'),
      (error) => /a restart clears them/.test(`${error.message}${error.stdout}${error.stderr}`));
    await assert.rejects(ssh(files.ssh_config, alias, 'true'), 'still no tunnel');

    // The page reloads as AI Studio's does: the extension waits out the restore and
    // reconnects by itself.
    await ide.reload();
    await popupShows(popup, 'up', { timeoutMs: 120_000, reason: /restarted/i });
    assert.equal((await ssh(files.ssh_config, alias, 'whoami')).trim(), 'aistudio');
    // Within this container the extension's keys are in place: the cells run by hand work.
    assert.match(simulator.runNotebookByHand('work/aistudio-ssh.ipynb'), /provisioned project/);
    assert.equal((await ssh(files.ssh_config, alias, 'whoami')).trim(), 'aistudio');

    // CPU -> GPU: another machine, zone and system host key; the same files still work,
    // and the popup and the ssh session see the GPU.
    await simulator.switchTo('gpu');
    await ide.goto(simulator.ideUrl);
    const switched = await popupShows(popup, 'up', { timeoutMs: 120_000, reason: /switched/i });
    assert.match(switched.environment, /GPU Tesla V100-SXM2-32GB/);
    assert.match(await ssh(files.ssh_config, alias, 'nvidia-smi -L'), /Tesla V100/);
  });
});

test('a container without terminals that refuses Contents API writes still connects (own kernel) and offers the cells as a download', async (t) => {
  const simulator = await startSimulator({ jupyterlab: '3.6', restoreSeconds: 2, refuseContentsWrites: true, terminals: false });
  t.after(() => simulator.stop());
  const sshDir = userDir(t, simulator.projectId);
  await withExtension(t, {}, async (browser) => {
    await setUpProject(browser, simulator, simulator.projectId, sshDir);
    const { popup } = await connectFromPopup(browser, simulator);
    // The cells ran on a kernel of the extension's own, shut down after.
    await eventually(() => simulator.kernelStates(), (states) => states.length === 0, { what: 'no kernel left' });
    assert.match(simulator.log(), /Kernel started/);
    await popup.waitForSelector('#download-notebook:not([hidden])');
    const files = await collectDownloads(popup, 1, () => popup.click('#download-notebook'), sshDir);
    const notebook = JSON.parse(readFileSync(files['aistudio-ssh.ipynb'], 'utf8'));
    assert.deepEqual(notebook.cells.map((cell) => cell.id),
      ['aistudio-ssh-intro', 'aistudio-ssh-provision', 'aistudio-ssh-tunnel', 'aistudio-ssh-probe']);
  });
});
