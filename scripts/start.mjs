// `npm start`: the demo for people without an AI Studio account. Builds, starts the local
// AI Studio simulator and its relay, opens its notebook page in Chromium with the extension
// (headless when there is no display), sets the relay up and connects as a user would, and
// prints the ssh command that works. Ctrl-C stops everything.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildSteps } from './build.mjs';
import { CACHE_DIR, runSteps } from '../project.mjs';
import { ensureDebianPackages } from './toolchain.mjs';

await runSteps('start', [
  ...buildSteps(),
  ['Debian packages', () => ensureDebianPackages(['chromium', 'openssh-server', 'openssh-client', 'python3-venv'])],
]);
// Imported after the build: the harness reads the built extension.
const { launchWithExtension, notebookSeenByExtension } = await import('../testbed/harness/browser.mjs');
const { startSimulator } = await import('../testbed/simulator/simulator.mjs');

const jupyterlab = process.env.JUPYTERLAB === '4' ? '4' : '3.6';
console.log(`starting the AI Studio simulator (JupyterLab ${jupyterlab}; JUPYTERLAB=4 for the other)`);
const simulator = await startSimulator({ jupyterlab });
let browser;
let stopping;
// Ctrl-C reaches npm, its shell and us at once: stop once, then exit.
const stop = () => {
  stopping ??= (async () => {
    await browser?.close().catch(() => {});
    await simulator.stop();
    process.exit(0);
  })();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
process.on('SIGHUP', stop);

browser = await launchWithExtension({ headless: !process.env.DISPLAY });
const page = await browser.context.newPage();
await page.goto(simulator.ideUrl);
console.log(`opened ${simulator.ideUrl} (restoring files first, as AI Studio does)`);
const notebook = await notebookSeenByExtension(browser, simulator.origin);
console.log(`extension loaded, notebook found: project ${notebook.projectId} in ${notebook.zone}, `
  + `Jupyter at ${notebook.baseUrl} started ${notebook.jupyterStarted}`);

// What a user does once: relay settings in the options page, the relay script on the relay,
// Connect in the popup, then the bundle (ssh config, known_hosts, key) into their ~/.ssh.
const { collectDownloads, openPopup, popupShows, setUpProject } = await import('../testbed/harness/user.mjs');
const sshDir = join(CACHE_DIR, 'demo', `aistudio-${notebook.projectId}`);
rmSync(sshDir, { recursive: true, force: true });
mkdirSync(sshDir, { recursive: true, mode: 0o700 });
await setUpProject(browser, simulator, notebook.projectId, sshDir);
console.log(`relay set up on ${simulator.relay.host}:${simulator.relay.port} with the script the options page printed`);
const popup = await openPopup(browser, page);
await popup.click('#connect');
const shown = await popupShows(popup, 'up', { timeoutMs: 180_000 });
const files = await collectDownloads(popup, 5, () => popup.click('#bundle'), sshDir);
console.log(`${shown.text} ${shown.environment}`);
console.log(`\nssh works now:\n\n  ssh -F ${files.ssh_config} aistudio-${notebook.projectId}\n`);
console.log('The browser keeps the tunnel up until Ctrl-C, which stops everything this started.');
