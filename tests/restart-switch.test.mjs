// User story (the simulator's own): an environment restart gives a new container that keeps
// only ~/work and ~/data; a CPU -> GPU switch moves to another zone, another system sshd host
// key and a GPU. Seen from inside, through a real Jupyter terminal.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { withExtension } from '../testbed/harness/browser.mjs';
import { startSimulator } from '../testbed/simulator/simulator.mjs';

/** Opens the IDE page and waits for the lab (which sets Jupyter's _xsrf cookie). */
async function openNotebook(page, simulator) {
  await page.goto(simulator.ideUrl);
  await page.waitForFunction(() => document.querySelector('#sync-status')?.textContent === 'ready', null, { timeout: 60_000 });
  await page.waitForFunction(() => document.cookie.includes('_xsrf='), null, { timeout: 60_000 });
}

/** Runs `command` in a new Jupyter terminal (REST + WebSocket, from the page) and returns its output. */
function inTerminal(page, command) {
  return page.evaluate(async (command) => {
    const base = location.pathname.replace(/home$/, '');
    const xsrf = document.cookie.split('; ').find((c) => c.startsWith('_xsrf='))?.slice('_xsrf='.length);
    const created = await fetch(`${base}api/terminals`, { method: 'POST', headers: { 'X-XSRFToken': xsrf } });
    if (!created.ok) throw new Error(`POST api/terminals: ${created.status}`);
    const { name } = await created.json();
    const socket = new WebSocket(`wss://${location.host}${base}terminals/websocket/${name}`);
    let output = '';
    try {
      return await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no end marker; output so far: ${output}`)), 30_000);
        socket.onerror = () => reject(new Error('terminal WebSocket failed'));
        socket.onmessage = (event) => {
          const [type, data] = JSON.parse(event.data);
          if (type !== 'stdout') return;
          output += data;
          // The marker is built by the shell, so the echoed command line does not match it.
          const match = output.match(/BEGIN-OUT\r?\n([\s\S]*?)END-OUT/);
          if (match) { clearTimeout(timer); resolve(match[1].replace(/\r/g, '')); }
        };
        socket.onopen = () => socket.send(JSON.stringify(['stdin', `echo BEGIN-""OUT; ${command}; echo END-""OUT\r`]));
      });
    } finally {
      socket.close();
      await fetch(`${base}api/terminals/${name}`, { method: 'DELETE', headers: { 'X-XSRFToken': xsrf } });
    }
  }, command);
}

const LOOK = 'ssh-keyscan -t ed25519 127.0.0.1 2>/dev/null | cut -d" " -f3; '
  + '(nvidia-smi -L 2>/dev/null || echo no-gpu); ls ~/work ~ /tmp | tr "\\n" " "';

test('a restart keeps ~/work, a switch to GPU changes zone, host key and accelerator', async (t) => {
  const simulator = await startSimulator({ jupyterlab: '4', accelerator: 'cpu', restoreSeconds: 2 });
  t.after(() => simulator.stop());
  await withExtension(t, {}, async (browser) => {
    const page = await browser.context.newPage();
    await openNotebook(page, simulator);
    await inTerminal(page, 'echo kept > ~/work/kept.txt; echo lost > ~/lost.txt; echo gone > /tmp/aistudio-sim-marker');
    const [cpuKey, cpuGpu, cpuFiles] = (await inTerminal(page, LOOK)).trim().split('\n');
    assert.match(cpuKey, /^AAAAC3NzaC1lZDI1NTE5/);
    assert.equal(cpuGpu, 'no-gpu');
    assert.match(cpuFiles, /kept\.txt/);
    assert.match(cpuFiles, /lost\.txt/);
    assert.match(cpuFiles, /aistudio-sim-marker/);
    assert.equal(simulator.zone, 'bd-cpu-01');

    await simulator.restart();
    await openNotebook(page, simulator);
    const [restartKey, restartGpu, restartFiles] = (await inTerminal(page, LOOK)).trim().split('\n');
    assert.equal(restartKey, cpuKey, 'same machine, same system host key');
    assert.equal(restartGpu, 'no-gpu');
    assert.match(restartFiles, /kept\.txt/, '~/work survives a restart');
    assert.doesNotMatch(restartFiles, /lost\.txt/, 'the rest of HOME does not');
    assert.doesNotMatch(restartFiles, /aistudio-sim-marker/, '/tmp is fresh');

    await simulator.switchTo('gpu');
    assert.equal(simulator.zone, 'bd-gpu-01');
    assert.match(simulator.ideUrl, /\/bd-gpu-01\/user\//);
    await openNotebook(page, simulator);
    const [gpuKey, gpuName, gpuFiles] = (await inTerminal(page, LOOK)).trim().split('\n');
    assert.match(gpuKey, /^AAAAC3NzaC1lZDI1NTE5/);
    assert.notEqual(gpuKey, cpuKey, 'another machine, another system host key');
    assert.match(gpuName, /^GPU 0: Tesla V100/);
    assert.match(gpuFiles, /kept\.txt/);
  });
});
