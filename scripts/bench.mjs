// `npm run bench [-- section...]`: speed of our code against a reference measured in the
// same run, written to bench/results.json and printed as a table. Sections: keygen, connect,
// direct.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildSteps } from './build.mjs';
import { ROOT, capture, runSteps } from '../project.mjs';

const RESULTS = join(ROOT, 'bench', 'results.json');
const RUNS = 15;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const compare = (ours, ref) => ({
  oursMedianMs: median(ours), refMedianMs: median(ref), ratio: median(ours) / median(ref), n: ours.length,
});

/** Milliseconds of each `ssh-keygen` run making one key of `args` into a scratch directory. */
function sshKeygenTimes(args) {
  const dir = mkdtempSync(join(tmpdir(), 'aistudio-ssh-bench-'));
  try {
    return Array.from({ length: RUNS }, (_, i) => {
      const started = process.hrtime.bigint();
      const result = spawnSync('ssh-keygen', ['-q', '-N', '', '-f', join(dir, `k${i}`), ...args]);
      if (result.status !== 0) throw new Error(`ssh-keygen ${args.join(' ')}: ${result.stderr}`);
      return Number(process.hrtime.bigint() - started) / 1e6;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Key generation through the extension's own code (`generateKey` in its worker), in headless Chromium. */
async function extensionKeygenTimes(algorithms) {
  const { launchWithExtension } = await import('../testbed/harness/browser.mjs');
  const browser = await launchWithExtension();
  try {
    const [worker] = browser.context.serviceWorkers();
    return await worker.evaluate(async ({ algorithms, runs }) => {
      const { core, generateKey } = globalThis.aistudioSsh;
      await core;
      await generateKey('ed25519', 'warm-up');
      const times = {};
      for (const algorithm of algorithms) {
        times[algorithm] = [];
        for (let i = 0; i < runs; i++) {
          const started = performance.now();
          await generateKey(algorithm, 'bench');
          times[algorithm].push(performance.now() - started);
        }
      }
      return times;
    }, { algorithms, runs: RUNS });
  } finally {
    await browser.close();
  }
}

async function keygen() {
  const ours = await extensionKeygenTimes(['ed25519', 'rsa-2048', 'rsa-3072']);
  const library = capture('cargo', ['run', '--quiet', '--release', '--locked', '-p', 'aistudio-ssh',
    '--example', 'keygen_reference', '--', String(RUNS)]);
  if (!library) throw new Error('the Ed25519 reference (cargo run --example keygen_reference) failed');
  return {
    // Ed25519: in-browser through the extension vs the bare ssh-key call, natively.
    ed25519: compare(ours.ed25519, JSON.parse(library)),
    rsa2048: compare(ours['rsa-2048'], sshKeygenTimes(['-t', 'rsa', '-b', '2048'])),
    rsa3072: compare(ours['rsa-3072'], sshKeygenTimes(['-t', 'rsa', '-b', '3072'])),
  };
}

/** Restarts per side: the machines are shared and one run in five can take twice as long. */
const CONNECT_RUNS = 9;

/** Seconds from `since` (ms epoch) until `ssh <alias> true` succeeds through the relay. */
async function secondsUntilSsh(ssh, config, alias, since) {
  for (;;) {
    if (await ssh(config, alias, 'true').then(() => true, () => false)) return (Date.now() - since) / 1000;
    if (Date.now() - since > 180_000) throw new Error('ssh did not work within 180 s');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Time to SSH after a restart: from the end of AI Studio's restore window (the simulator
 * knows it exactly) to a working `ssh aistudio-<project> true`. Ours: the IDE page reloads
 * and the extension reconnects by itself. Bare: the same cells' scripts run by a shell in
 * the container as soon as the restore is over, with the IDE page reloading as well (the
 * user has it open; its JupyterLab loads from the same server meanwhile) but auto-connect off.
 */
async function connect() {
  const { launchWithExtension } = await import('../testbed/harness/browser.mjs');
  const { collectDownloads, connectFromPopup, setUpProject, ssh } = await import('../testbed/harness/user.mjs');
  const { CONTAINER_USER, startSimulator } = await import('../testbed/simulator/simulator.mjs');
  const simulator = await startSimulator({ jupyterlab: '3.6', restoreSeconds: 2 });
  const home = mkdtempSync(join(tmpdir(), 'aistudio-ssh-bench-'));
  const browser = await launchWithExtension();
  try {
    const alias = `aistudio-${simulator.projectId}`;
    await setUpProject(browser, simulator, simulator.projectId, home);
    const { ide, popup } = await connectFromPopup(browser, simulator);
    const { ssh_config: config } = await collectDownloads(popup, 5, () => popup.click('#bundle'), home);
    // The companion notebook holds no private key: the reference is a user who kept the
    // container's keys (as `provision.sh` brings them) and puts them back after a restart.
    const keysDir = simulator.containerPath(`.ssh/aistudio-${simulator.projectId}`);
    const savedKeys = join(home, 'container-keys');
    // Kept as root's: a restart clears what the container user owns in /tmp.
    execFileSync('cp', ['-r', keysDir, savedKeys]);
    const putKeysBack = () => {
      mkdirSync(dirname(keysDir), { recursive: true, mode: 0o700 });
      execFileSync('cp', ['-r', savedKeys, keysDir]);
      execFileSync('chown', ['-R', `${CONTAINER_USER}:`, dirname(keysDir)]);
    };
    const autoConnect = (on) => popup.evaluate((on) => chrome.runtime.sendMessage({ kind: 'setAutoConnect', autoConnect: on }), on);
    const ours = [];
    const bare = [];
    for (let run = 0; run < CONNECT_RUNS; run++) {
      await autoConnect(true);
      await simulator.restart();
      await ide.reload();
      ours.push(await secondsUntilSsh(ssh, config, alias, simulator.restoreEndsAt));
      await autoConnect(false);
      await simulator.restart();
      await ide.reload();
      while (Date.now() < simulator.restoreEndsAt) await new Promise((resolve) => setTimeout(resolve, 20));
      putKeysBack();
      const cells = simulator.runCellsInShell('work/aistudio-ssh.ipynb');
      bare.push(await secondsUntilSsh(ssh, config, alias, simulator.restoreEndsAt));
      if (await cells !== 0) throw new Error('the cells failed when run by a shell');
    }
    await autoConnect(true);
    return { oursMedianS: median(ours), bareMedianS: median(bare), ratio: median(ours) / median(bare), n: ours.length, ours, bare };
  } finally {
    await browser.close();
    await simulator.stop();
    rmSync(home, { recursive: true, force: true });
  }
}

/** Percentile `p` (0-100) of `values`. */
const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

/** One-byte echoes in an open `ssh <alias> cat` session: their round trips in ms. */
async function echoRoundTrips(env, config, alias, count) {
  const { spawn } = await import('node:child_process');
  const child = spawn('ssh', ['-F', config, '-o', 'BatchMode=yes', '-T', alias, 'cat'], { env, stdio: ['pipe', 'pipe', 'ignore'] });
  let waiting = null;
  let exited = null;
  child.stdout.on('data', () => { waiting?.resolve(); waiting = null; });
  child.on('exit', (code) => { exited = new Error(`ssh ${alias} cat exited with ${code}`); waiting?.reject(exited); });
  const echo = () => new Promise((resolve, reject) => {
    if (exited) return reject(exited);
    waiting = { resolve, reject };
    child.stdin.write('x');
  });
  try {
    // The session's first bytes also wait for its setup: warm up first.
    for (let i = 0; i < 20; i++) await echo();
    const times = [];
    for (let i = 0; i < count; i++) {
      const start = process.hrtime.bigint();
      await echo();
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    return times;
  } finally {
    child.kill();
  }
}

/** What a process is to the path of a byte, from its command line (`null`: not on it). */
function roleOf(pid, args) {
  if (pid === process.pid) return 'ssh, scp, proxy (reaped by the bench)';
  if (args.startsWith('/usr/lib/chromium/chromium')) {
    if (!args.includes('--type=')) return 'chromium browser process';
    if (args.includes('--type=renderer')) {
      return args.includes('--extension-process') ? 'chromium extension renderer (worker)' : 'chromium page renderer (content script)';
    }
    if (args.includes('network.mojom.NetworkService')) return 'chromium network service';
    return 'chromium other';
  }
  if (/aistudio-ssh (keeper|native-host)/.test(args)) return 'helper (keeper, native host)';
  if (args.includes('ipykernel')) return 'jupyter kernel (attach)';
  if (/python.*bridge/.test(args)) return 'container bridge';
  if (args.includes('jupyter')) return 'jupyter server';
  if (/^sshd/.test(args) || args.includes('/sshd')) return 'container sshd';
  if (/relay|ssh .*-R/.test(args)) return 'relay';
  return null;
}

/** CPU ms (own and reaped children's) of every process on the path, summed by role. */
function cpuByRole() {
  const ticksPerMs = 100 / 1000; // USER_HZ
  const totals = {};
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      const role = roleOf(Number(entry), args);
      if (!role) continue;
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command's closing parenthesis: utime, stime, cutime, cstime are 14-17.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ms = (indices) => indices.reduce((sum, i) => sum + Number(fields[i]), 0) / ticksPerMs;
      if (Number(entry) === process.pid) {
        // The bench itself apart from its children: the simulator's front (AI Studio's
        // gateway: TLS, proxying the WebSockets) runs in it, and Playwright while attached.
        totals['simulator front (TLS, proxy), Playwright'] = ms([11, 12]);
        totals[role] = ms([13, 14]);
        continue;
      }
      totals[role] = (totals[role] ?? 0) + ms([11, 12, 13, 14]);
    } catch { /* gone meanwhile */ }
  }
  return totals;
}

/** CPU ms per MB moved, by role, between two `cpuByRole()` snapshots (roles under 1 ms/MB left out). */
function cpuMsPerMB(before, after, megabytes) {
  const perMB = {};
  for (const [role, ms] of Object.entries(after)) {
    const value = (ms - (before[role] ?? 0)) / megabytes;
    if (value >= 1) perMB[role] = Math.round(value);
  }
  return perMB;
}

/** scp of `megabytes` MB each way: MB/s up and down, and CPU ms per MB of each process on the way. */
async function scpThroughput(env, config, alias, dir, megabytes) {
  const { randomBytes } = await import('node:crypto');
  const { scpWith } = await import('../testbed/harness/helper.mjs');
  const file = join(dir, 'bench.bin');
  writeFileSync(file, randomBytes(megabytes * 1024 * 1024));
  const mb = megabytes * 1.048576;
  let cpu = cpuByRole();
  let start = Date.now();
  await scpWith(env, config, file, `${alias}:bench.bin`);
  const upMBps = mb / ((Date.now() - start) / 1000);
  const upCpu = cpuByRole();
  const cpuUp = cpuMsPerMB(cpu, upCpu, mb);
  cpu = upCpu;
  start = Date.now();
  await scpWith(env, config, `${alias}:bench.bin`, join(dir, 'bench-back.bin'));
  const downMBps = mb / ((Date.now() - start) / 1000);
  return { upMBps, downMBps, cpuMsPerMB: { up: cpuUp, down: cpuMsPerMB(cpu, cpuByRole(), mb) } };
}

/**
 * Direct mode against the relay path in one run, on the simulator: scp of 50 MB each way
 * (MB/s), the round trip of a one-byte echo in an open session (p50, p95 ms), and the CPU
 * each process on the way spends per MB. The same project, connected first through the
 * relay, then switched to direct in the options. Chromium is driven over the DevTools
 * protocol to set up, and measured with the debugger detached, as a user's browser runs.
 */
async function direct() {
  const { launchDetachable, openExtensionPage } = await import('../testbed/harness/browser.mjs');
  const { collectDownloads, connectFromPopup, setUpProject } = await import('../testbed/harness/user.mjs');
  const { helperEnvironment, installHelper } = await import('../testbed/harness/helper.mjs');
  const { startSimulator } = await import('../testbed/simulator/simulator.mjs');
  const simulator = await startSimulator({ jupyterlab: '4' });
  const user = helperEnvironment();
  const home = mkdtempSync(join(tmpdir(), 'aistudio-ssh-bench-'));
  const browser = await launchDetachable({ env: user.env, prepareProfile: installHelper });
  const alias = `aistudio-${simulator.projectId}`;
  const measure = async (config) => {
    await browser.detach();
    const rtt = await echoRoundTrips(user.env, config, alias, 300);
    const figures = {
      ...(await scpThroughput(user.env, config, alias, home, 50)),
      rttP50Ms: percentile(rtt, 50),
      rttP95Ms: percentile(rtt, 95),
    };
    await browser.attach();
    return figures;
  };
  try {
    const relayDir = join(home, 'relay');
    const directDir = join(home, 'direct');
    mkdirSync(relayDir);
    mkdirSync(directDir);
    await setUpProject(browser, simulator, simulator.projectId, relayDir);
    const { popup } = await connectFromPopup(browser, simulator);
    const relayFiles = await collectDownloads(popup, 5, () => popup.click('#bundle'), relayDir);
    const popupUrl = popup.url();
    const relay = await measure(relayFiles.ssh_config);
    // A new connection: the popup is found again among the tabs.
    await browser.context.pages().find((page) => page.url() === popupUrl).click('#disconnect');
    const options = await openExtensionPage(browser, 'options.html');
    await options.evaluate(([projectId, sshDir]) => chrome.runtime.sendMessage({
      kind: 'saveProjectSettings', projectId, settings: { route: 'direct', remotePort: 7423, sshDir },
    }), [simulator.projectId, directDir]);
    await options.close();
    const { popup: directPopup } = await connectFromPopup(browser, simulator);
    const directFiles = await collectDownloads(directPopup, 4, () => directPopup.click('#bundle'), directDir);
    const directResult = await measure(directFiles.ssh_config);
    return { direct: directResult, relay, addedRttP50Ms: directResult.rttP50Ms - relay.rttP50Ms };
  } finally {
    await browser.close();
    await simulator.stop();
    user.remove();
    rmSync(home, { recursive: true, force: true });
  }
}

const SECTIONS = { keygen, connect, direct };

const wanted = process.argv.slice(2);
for (const name of wanted) if (!SECTIONS[name]) throw new Error(`unknown bench section ${name}; known: ${Object.keys(SECTIONS).join(', ')}`);
const results = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, 'utf8')) : {};
await runSteps('bench', [
  ...buildSteps(),
  ...(wanted.length ? wanted : Object.keys(SECTIONS)).map((name) => [name, async () => {
    results[name] = await SECTIONS[name]();
    mkdirSync(join(ROOT, 'bench'), { recursive: true });
    writeFileSync(RESULTS, `${JSON.stringify(results, null, 2)}\n`);
    if (name === 'direct') {
      const { cpuMsPerMB: _, ...direct } = results.direct.direct;
      const { cpuMsPerMB: __, ...relay } = results.direct.relay;
      console.table(Object.fromEntries(Object.entries({ direct, relay }).map(([path, figures]) => [path, Object.fromEntries(
        Object.entries(figures).map(([key, value]) => [key, value.toFixed(2)]))])));
      console.log(`added round trip (p50): ${results.direct.addedRttP50Ms.toFixed(2)} ms`);
      console.log('CPU ms per MB moved, by process:');
      const roles = [...new Set(['direct', 'relay'].flatMap((path) => ['up', 'down']
        .flatMap((way) => Object.keys(results.direct[path].cpuMsPerMB[way]))))].sort();
      console.table(Object.fromEntries(roles.map((role) => [role, Object.fromEntries(['direct', 'relay']
        .flatMap((path) => ['up', 'down'].map((way) => [`${path} ${way}`, results.direct[path].cpuMsPerMB[way][role] ?? 0])))])));
      return;
    }
    const cases = 'ratio' in results[name] ? { [name]: results[name] } : results[name];
    console.table(Object.fromEntries(Object.entries(cases).map(([case_, r]) => [case_, r.oursMedianS === undefined ? {
      'ours median ms': r.oursMedianMs.toFixed(3), 'ref median ms': r.refMedianMs.toFixed(3), ratio: r.ratio.toFixed(2), n: r.n,
    } : { 'ours median s': r.oursMedianS.toFixed(2), 'bare median s': r.bareMedianS.toFixed(2), ratio: r.ratio.toFixed(2), n: r.n }])));
  }]),
]);
