// User story: I have no server. I install the extension and the helper, open my notebook,
// press Connect, and `ssh aistudio-<project>` works through the notebook tab: ssh, scp both
// ways, sftp, `ssh -L`, several sessions at once, through a page reload, the platform
// cutting WebSockets and the extension's worker stopping; closing the tab makes ssh fail at
// once with a message that says so.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { eventually, openExtensionPage, withExtension } from '../testbed/harness/browser.mjs';
import {
  helperEnvironment, installHelper, scpWith, sftpWith, sha256File, sshWith,
} from '../testbed/harness/helper.mjs';
import { collectDownloads, openIdeAndPopup, openPopup, popupShows } from '../testbed/harness/user.mjs';
import { CONTAINER_USER, freePort, startSimulator } from '../testbed/simulator/simulator.mjs';

const execFileAsync = promisify(execFile);

/** A file of `megabytes` random MB. */
function randomFile(dir, name, megabytes) {
  const path = join(dir, name);
  writeFileSync(path, randomBytes(megabytes * 1024 * 1024));
  return path;
}

/** An interactive `ssh <alias> cat`: each line sent comes back. */
function catSession(env, config, alias) {
  const child = spawn('ssh', ['-F', config, '-o', 'BatchMode=yes', '-T', alias, 'cat'], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  let buffered = '';
  let waiting = null;
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    const end = buffered.indexOf('\n');
    if (end >= 0 && waiting) {
      const line = buffered.slice(0, end);
      buffered = buffered.slice(end + 1);
      waiting(line);
      waiting = null;
    }
  });
  return {
    echo: (line) => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no echo of ${line} in 60 s`)), 60_000);
      waiting = (got) => { clearTimeout(timer); resolve(got); };
      child.stdin.write(`${line}\n`);
    }),
    close: () => child.kill(),
  };
}

// JupyterLab 3.6 with the helper's lane turned off (AISTUDIO_SSH_LANE=off in the browser's
// environment): the bytes go as base64 in native messages, the way with no lane.
for (const [jupyterlab, lane] of [['3.6', false], ['4', true]]) {
  test(`direct: ssh through the notebook tab, no relay (JupyterLab ${jupyterlab}, lane ${lane ? 'on' : 'off'})`, async (t) => {
    const simulator = await startSimulator({ jupyterlab });
    const user = helperEnvironment(lane ? {} : { AISTUDIO_SSH_LANE: 'off' });
    const home = mkdtempSync(join(tmpdir(), 'aistudio-ssh-user-'));
    const sshDir = join(home, '.ssh', `aistudio-${simulator.projectId}`);
    mkdirSync(sshDir, { recursive: true, mode: 0o700 });
    let passed = false;
    t.after(async () => {
      await simulator.stop();
      // On a failure the keeper's log goes with the screenshots.
      if (!passed) user.saveLog(`direct-jupyterlab-${jupyterlab}`);
      user.remove();
      rmSync(home, { recursive: true, force: true });
    });
    const alias = `aistudio-${simulator.projectId}`;
    /** Only the carrier's kernel runs in Jupyter (none left behind). */
    const oneKernel = () => eventually(() => simulator.kernelStates(), (kernels) => kernels.length === 1,
      { what: 'one kernel in Jupyter' });

    await withExtension(t, { env: user.env, prepareProfile: installHelper }, async (browser) => {
      // The user keeps the project's files in a folder of the test's own (the options' field).
      const options = await openExtensionPage(browser, 'options.html');
      const errors = await options.evaluate(([projectId, sshDir]) => chrome.runtime.sendMessage({
        kind: 'saveProjectSettings', projectId, settings: { remotePort: 7423, sshDir },
      }), [simulator.projectId, sshDir]);
      assert.deepEqual(errors.value, []);
      await options.close();
      // No relay anywhere: the popup says direct, the helper answers, Connect works.
      const { ide, popup } = await openIdeAndPopup(browser, simulator);
      await eventually(() => popup.textContent('#helper-state'), (text) => /helper .* running/.test(text ?? ''),
        { what: 'the helper running in the popup' });
      await popup.click('#connect');
      await popupShows(popup, 'up', { timeoutMs: 120_000 });

      // The bundle: ssh config with the ProxyCommand, known_hosts, the key; no relay script.
      const files = await collectDownloads(popup, 4, () => popup.click('#bundle'), sshDir);
      assert.deepEqual(Object.keys(files).sort(), ['id_aistudio', 'id_aistudio.pub', 'known_hosts', 'ssh_config']);
      const config = readFileSync(files.ssh_config, 'utf8');
      assert.match(config, /^ {4}ProxyCommand aistudio-ssh proxy %n$/m);
      assert.doesNotMatch(config, /ProxyJump/);
      const ssh = (command, extra) => sshWith(user.env, files.ssh_config, alias, command, extra);

      assert.equal((await ssh('whoami')).trim(), CONTAINER_USER);
      // The bytes took the lane (a loopback WebSocket), or base64 in native messages.
      if (lane) assert.match(user.keeperLog(), /an extension opened the lane/);
      else assert.match(user.keeperLog(), /no lane: AISTUDIO_SSH_LANE=off/);
      assert.equal(/opened the lane/.test(user.keeperLog()), lane);
      // The worker and the notebook tab exchange the link over a MessagePort of their own.
      const links = await browser.context.serviceWorkers()[0].evaluate(() => globalThis.aistudioSsh.directLinks());
      assert.deepEqual(links, [{ project: simulator.projectId, up: true, lane, messagePort: true }]);

      // scp of 20 MB each way, equal sha256.
      const up = randomFile(home, 'up.bin', 20);
      await scpWith(user.env, files.ssh_config, up, `${alias}:up.bin`);
      assert.equal((await ssh('sha256sum up.bin')).split(' ')[0], sha256File(up));
      await ssh('head -c 20971520 /dev/urandom > down.bin');
      const down = join(home, 'down.bin');
      await scpWith(user.env, files.ssh_config, `${alias}:down.bin`, down);
      assert.equal(sha256File(down), (await ssh('sha256sum down.bin')).split(' ')[0]);

      // sftp lists the home folder.
      const listing = await sftpWith(user.env, files.ssh_config, alias, 'ls -1\n');
      assert.match(listing, /up\.bin/);

      // Three sessions at once: each waits (at most 30 s) until all three have started.
      const meet = `meet-${Date.now()}`;
      const three = await Promise.all([1, 2, 3].map((n) => ssh(
        `mkdir -p ${meet}; touch ${meet}/${n}; for i in $(seq 300); do [ "$(ls ${meet} | wc -l)" = 3 ] && break; sleep 0.1; done; ls ${meet} | wc -l; echo session-${n}`,
      )));
      assert.deepEqual(three.map((out) => out.trim().split('\n')), [1, 2, 3].map((n) => ['3', `session-${n}`]));

      // `ssh -L` to a web server in the container.
      const containerPort = await freePort();
      const localPort = await freePort();
      await ssh(`mkdir -p www && echo hello-from-container > www/index.html && cd www && (nohup python3 -m http.server ${containerPort} --bind 127.0.0.1 </dev/null >/dev/null 2>&1 &) ; sleep 1`);
      const forward = spawn('ssh', ['-F', files.ssh_config, '-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes', '-N',
        '-L', `127.0.0.1:${localPort}:127.0.0.1:${containerPort}`, alias], { env: user.env, stdio: 'ignore' });
      t.after(() => forward.kill());
      const page = await eventually(
        () => fetch(`http://127.0.0.1:${localPort}/`).then((response) => response.text()).catch(() => ''),
        (text) => text.includes('hello-from-container'), { what: 'the container web server through ssh -L' },
      );
      assert.match(page, /hello-from-container/);
      forward.kill();
      await ssh(`pkill -f "[h]ttp.server ${containerPort}" || true`);

      // A slow page reload during a transfer: the transfer completes, the interactive
      // session open meanwhile stays, and the link came back through a new kernel WebSocket.
      const kernelSockets = () => simulator.webSocketsOpened().filter((path) => path.startsWith('api/kernels/')).length;
      const socketsBefore = kernelSockets();
      const big = randomFile(home, 'big.bin', 50);
      const session = catSession(user.env, files.ssh_config, alias);
      assert.equal(await session.echo('before'), 'before');
      let finished = false;
      const transfer = scpWith(user.env, files.ssh_config, big, `${alias}:big.bin`).then(() => { finished = true; });
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(finished, false, 'the transfer was still running at the reload');
      // A slow page: for 4 s after the reload there is no notebook frame to carry the link.
      simulator.slowIdePage(4000);
      const reloadedAt = Date.now();
      await ide.reload();
      simulator.slowIdePage(0);
      assert.ok(Date.now() - reloadedAt >= 4000, 'the reload took the delay');
      await transfer;
      assert.equal((await ssh('sha256sum big.bin')).split(' ')[0], sha256File(big));
      assert.ok(kernelSockets() > socketsBefore, 'a new kernel WebSocket after the reload');
      assert.equal(await session.echo('after'), 'after');
      session.close();
      // The reloaded page's carrier shut the old carrier's kernel down: one kernel runs.
      await oneKernel();

      // The platform cuts the WebSockets during a 50 MB transfer (a real client saw it cut
      // long connections): it completes, byte for byte.
      const cut = randomFile(home, 'cut.bin', 50);
      let cuts = 0;
      const cutting = setInterval(() => { cuts += simulator.cutWebSockets('api/kernels'); }, 2000);
      try {
        await scpWith(user.env, files.ssh_config, cut, `${alias}:cut.bin`);
      } finally {
        clearInterval(cutting);
      }
      assert.ok(cuts >= 1, `the transfer saw ${cuts} cuts`);
      assert.equal((await ssh('sha256sum cut.bin')).split(' ')[0], sha256File(cut));

      // The carrier's kernel killed during a session: the session goes on (the bridge runs
      // apart from any kernel; the extension attaches again to the restarted kernel).
      const ticking = ssh('for i in 1 2 3 4 5 6; do echo tick $i; sleep 1; done');
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const socketsBeforeKill = kernelSockets();
      await execFileAsync('pkill', ['-9', '-u', CONTAINER_USER, '-f', 'ipykernel_launcher']);
      assert.equal((await ticking).trim().split('\n').length, 6);
      assert.ok(kernelSockets() > socketsBeforeKill, 'the carrier attached again after the kill');

      // The extension's worker stopped mid-transfer (browsers stop MV3 workers, and Chromium
      // then kills the native host): the helper's keeper holds the sessions, the notebook's
      // content script wakes the worker (no popup open to do it), and the transfer completes.
      await popup.close();
      const keeper = user.keeperPid();
      assert.ok(keeper, 'a keeper runs');
      const oldWorker = browser.context.serviceWorkers()[0];
      await oldWorker.evaluate(() => { globalThis.beforeTheStop = true; });
      const devtools = await openExtensionPage(browser, 'options.html');
      const cdp = await browser.context.newCDPSession(devtools);
      await cdp.send('ServiceWorker.enable');
      const held = randomFile(home, 'held.bin', 30);
      const open = catSession(user.env, files.ssh_config, alias);
      assert.equal(await open.echo('before the stop'), 'before the stop');
      let heldDone = false;
      const heldTransfer = scpWith(user.env, files.ssh_config, held, `${alias}:held.bin`).then(() => { heldDone = true; });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await cdp.send('ServiceWorker.stopAllWorkers');
      assert.equal(heldDone, false, 'the transfer was still running when the worker stopped');
      await devtools.close();
      await heldTransfer;
      assert.equal((await ssh('sha256sum held.bin')).split(' ')[0], sha256File(held));
      assert.equal(await open.echo('after the stop'), 'after the stop');
      open.close();
      const worker = browser.context.serviceWorkers()[0];
      assert.equal(await worker.evaluate(() => globalThis.beforeTheStop), undefined, 'a new worker runs');
      assert.equal(user.keeperPid(), keeper, 'the same keeper held the sessions');
      await oneKernel();

      // The keeper killed: the sessions it held are gone, but the worker starts the helper
      // again by itself, and a new ssh works within seconds (no popup open).
      process.kill(keeper, 'SIGKILL');
      const killedAt = Date.now();
      await eventually(() => ssh('whoami').catch(() => ''), (out) => out.trim() === CONTAINER_USER,
        { what: 'ssh after the keeper was killed', timeoutMs: 30_000 });
      const sshBackAfter = Date.now() - killedAt;
      assert.ok(user.keeperPid() !== keeper, 'a new keeper');
      t.diagnostic(`ssh back ${sshBackAfter} ms after the keeper was killed`);

      // Disconnect stops the bridge: ssh then fails within seconds, saying to press Connect.
      const again = await openPopup(browser, ide);
      await again.click('#disconnect');
      await popupShows(again, 'disconnected');
      const disconnectedAt = Date.now();
      const refused = await execFileAsync('ssh', ['-F', files.ssh_config, '-o', 'BatchMode=yes', alias, 'true'],
        { env: user.env, timeout: 60_000 }).then(() => null, (error) => error);
      assert.ok(refused, 'ssh must fail after Disconnect');
      assert.match(refused.stderr, /press Connect/);
      const refusedAfter = Date.now() - disconnectedAt;
      assert.ok(refusedAfter < 25_000, `failed after ${refusedAfter} ms`);
      await again.close();

      // The tab closed: ssh fails within seconds, saying why.
      await ide.close();
      const started = Date.now();
      const failed = await execFileAsync('ssh', ['-F', files.ssh_config, '-o', 'BatchMode=yes', alias, 'true'],
        { env: user.env, timeout: 30_000 }).then(() => null, (error) => error);
      assert.ok(failed, 'ssh must fail with the tab closed');
      assert.match(failed.stderr, /no notebook tab of project/);
      assert.ok(Date.now() - started < 10_000, `failed after ${Date.now() - started} ms`);
      passed = true;
    });
  });
}

test('direct: without the helper the popup says how to install it', async (t) => {
  const simulator = await startSimulator({ jupyterlab: '4' });
  const user = helperEnvironment();
  t.after(async () => { await simulator.stop(); user.remove(); });
  await withExtension(t, { env: user.env }, async (browser) => {
    const { popup } = await openIdeAndPopup(browser, simulator);
    await eventually(() => popup.textContent('#helper-state'), (text) => /not installed/.test(text ?? ''),
      { what: 'the popup saying the helper is missing' });
    assert.equal(await popup.isVisible('#helper-install'), true);
    assert.match(await popup.textContent('#helper-install'), /aistudio-ssh install/);
  });
});
