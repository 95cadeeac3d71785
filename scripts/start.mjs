// `npm start`: the demo for people without an AI Studio account. Builds, starts the local
// AI Studio simulator, opens its notebook page in Chromium with the extension (headless when
// there is no display), and reports what the extension found. Ctrl-C stops everything.
import { buildSteps } from './build.mjs';
import { runSteps } from './project.mjs';
import { ensureDebianPackages } from './toolchain.mjs';

await runSteps('start', [
  ...buildSteps(),
  ['Debian packages', () => ensureDebianPackages(['chromium', 'openssh-server', 'python3-venv'])],
]);
// Imported after the build: the harness reads the built extension.
const { launchWithExtension, notebookSeenByExtension } = await import('../tests/harness/browser.mjs');
const { startSimulator } = await import('../tests/simulator/simulator.mjs');

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
console.log('Connecting (ssh aistudio-<project>) arrives with the connect issue. Ctrl-C stops everything.');
