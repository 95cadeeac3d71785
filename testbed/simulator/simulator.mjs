// A local stand-in for AI Studio built from real parts, assembled here: the front
// (front.mjs: an HTTPS aistudio.baidu.com on loopback), the container behind it
// (container.mjs: a real JupyterLab 3.6 or 4 as an unprivileged container user, a real
// root sshd as its port 22), a relay server (relay.mjs), and the controls tests use
// (controls.mjs). Reproduces what the extension meets on AI Studio (the README's "What it
// meets on AI Studio").
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Container } from './container.mjs';
import { simulatorControls } from './controls.mjs';
import { Front } from './front.mjs';
import { ensureJupyterVenvs } from './jupyterlab-venvs.mjs';
import { startRelay } from './relay.mjs';

export { freePort, stopProcessGroup } from '../processes.mjs';
export { CONTAINER_USER } from './container.mjs';
export { AISTUDIO_HOST, RESTORE_BODY, RESTORE_STATUS, SELF_HOSTED_HOST } from './front.mjs';
export { RELAY_ADDRESS, RELAY_PORT, RELAY_USER } from './relay.mjs';

/**
 * Starts the front on 127.0.0.1:443 and a container: a JupyterLab as the container user and a
 * root sshd on 127.0.0.1:22. Controls: `restart()` (new container, same machine: HOME wiped
 * except work/ and data/, fresh /tmp), `switchTo('cpu' | 'gpu')` (another machine: the zone in
 * the URL, the system host key and nvidia-smi / hy-smi change), `stop()`.
 *
 * What a real AI Studio client logged, as switches: `ide: 'vscode'` (an
 * IDE page with no lab iframe), `siteXsrf` (the site sets its own `_xsrf` on `/` once the
 * editor is in, beside Jupyter's), `coldStartSeconds` (HTML, then 502, before the restore
 * window), `expireLogin()` / `logIn()` (a login page for REST, WebSocket upgrades refused),
 * `cutWebSockets()` and `webSocketCuts` (base-path WebSockets cut at random every 1-5 min),
 * `api_serving/<port>/` (project cookies, one layer of %-decoding, no query, its WebSockets cut
 * every 2-3 s). Always: `POST api/terminals` picks the name, the container's LANG names a
 * locale it lacks (en_US.UTF-8 beside C, C.UTF-8, POSIX).
 * @param {{ jupyterlab?: '3.6' | '4', accelerator?: 'cpu' | 'gpu' | 'dcu', userId?: string, projectId?: string,
 *   restoreSeconds?: number, coldStartSeconds?: number, ide?: 'lab' | 'vscode', siteXsrf?: boolean,
 *   webSocketCuts?: boolean, refuseContentsWrites?: boolean, terminals?: boolean }} options
 */
export async function startSimulator({
  jupyterlab = '3.6', accelerator = 'cpu', userId = '1234567', projectId = '7892508', restoreSeconds = 3,
  refuseContentsWrites = false, terminals = true, coldStartSeconds = 0, ide = 'lab', siteXsrf = false,
  webSocketCuts = false,
} = {}) {
  if (process.getuid?.() !== 0) throw new Error('the simulator needs root: it creates the container user and binds ports 443 and 22');
  const venv = ensureJupyterVenvs()[`jupyterlab-${jupyterlab}`];
  if (!venv) throw new Error(`no venv for JupyterLab ${jupyterlab}`);
  const dir = mkdtempSync(join(tmpdir(), 'aistudio-sim-'));
  chmodSync(dir, 0o755);
  const container = new Container({ dir, venv, jupyterlab, accelerator, userId, projectId, terminals });
  const front = new Front({
    dir, base: () => container.base, jupyter: () => container.jupyter, jupyterlab, userId, projectId,
    restoreSeconds, coldStartSeconds, ide, siteXsrf, refuseContentsWrites, webSocketCuts,
  });
  // Synchronous, so the front never sees a container between two of its states.
  container.on('spawned', () => front.containerSpawned());
  container.on('up', () => front.containerUp());
  container.on('stopped', () => front.containerGone());
  let relay;
  try {
    await front.listen();
    relay = startRelay(dir);
    // A project never opened before: nothing of earlier runs in the container user's home.
    container.wipeFiles([]);
    await container.start();
  } catch (error) {
    relay?.stop();
    front.close();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`the simulator did not start: ${error.message}`);
  }
  return simulatorControls({ front, container, relay, dir, jupyterlab, projectId });
}
