// The simulator as tests, `npm start` and `npm run bench` see it: its addresses, and the
// controls that make AI Studio do what it does to a user (restart, switch, expire a login,
// cut WebSockets) or look inside the container.
import { rmSync } from 'node:fs';
import { AISTUDIO_HOST, SELF_HOSTED_HOST } from './front.mjs';
import { killContainerUserProcesses, wipeContainerTmp } from './container.mjs';

/**
 * The test-facing simulator over its parts, all started.
 * @param {{ front: import('./front.mjs').Front, container: import('./container.mjs').Container,
 *   relay: ReturnType<typeof import('./relay.mjs').startRelay>, dir: string, jupyterlab: string, projectId: string }} parts
 */
export function simulatorControls({ front, container, relay, dir, jupyterlab, projectId }) {
  return {
    origin: `https://${AISTUDIO_HOST}`,
    get baseUrl() { return `https://${AISTUDIO_HOST}${container.base}`; },
    get ideUrl() { return `https://${AISTUDIO_HOST}${container.base}home`; },
    /** The container's Jupyter base URL on the self-hosted origin. */
    get selfHostedBaseUrl() { return `https://${SELF_HOSTED_HOST}${container.base}`; },
    get zone() { return container.zone; },
    get accelerator() { return container.accelerator; },
    jupyterlab,
    projectId,
    relay,
    /**
     * The open notebook `work/<name>` gets a session whose kernel then runs
     * `time.sleep(600)`: the user's notebook is busy. Returns the notebook's path.
     */
    busyKernel: (name = 'main.ipynb') => container.busyKernel(name),
    /** Runs a notebook's cells top to bottom as its user would by hand (nbconvert --execute, a real kernel). */
    runNotebookByHand: (path) => container.runNotebookByHand(path),
    /**
     * Runs a notebook's `%%bash` cells, in order, as plain bash in the container without
     * Jupyter: the same scripts, run directly by a shell (the bench's reference). Resolves
     * with bash's exit code once all ran.
     */
    runCellsInShell: (path) => container.runCellsInShell(path),
    /** A path in the container user's home (to check what the extension left there). */
    containerPath: (relative) => container.path(relative),
    /** When the current restore window ends (ms since the epoch). */
    get restoreEndsAt() { return front.restoreEndsAt; },
    /** The execution state Jupyter reports for a kernel ('busy' while it sleeps). */
    kernelStates: () => container.kernelStates(),
    /** The names of the terminals Jupyter runs (none when terminals are off). */
    terminalNames: () => container.terminalNames(),
    /** A new container on the same machine (an environment restart). */
    restart: () => container.restart(),
    /** A new container on a CPU or GPU machine: another zone, system host key and accelerator. */
    switchTo: (wanted) => container.switchTo(wanted),
    /** Stops the container's processes by their PIDs and process groups, then the front. */
    async stop() {
      front.stopCuts();
      await container.stop();
      // Whatever else the container ran (the tunnel, the bridge, a user-mode sshd) ends with
      // it, and so does what it left in /tmp (the machine's).
      killContainerUserProcesses();
      wipeContainerTmp();
      relay.stop();
      await front.close();
      rmSync(dir, { recursive: true, force: true });
    },
    /** The gateway forgets the login: REST answers a login page, WebSocket upgrades are refused. */
    expireLogin: () => front.expireLogin(),
    /** The user logged in again. */
    logIn: () => front.logIn(),
    /** The IDE page's HTML comes `ms` after its headers from now on (0: at once). */
    slowIdePage: (ms) => front.slowIdePage(ms),
    /** The unsafe requests so far, as Tornado's XSRF check saw them. */
    unsafeRequests: () => front.unsafeRequests(),
    /** The paths (under the base) of the WebSockets opened through the front so far. */
    webSocketsOpened: () => front.webSocketsOpened(),
    /** Cuts base-path WebSockets now (those under `prefix`, if given); returns how many. */
    cutWebSockets: (prefix) => front.cutBaseWebSockets(prefix),
    /** Whether the cold start is on (the restore window follows it). */
    get starting() { return front.starting; },
    log: () => container.log,
  };
}
