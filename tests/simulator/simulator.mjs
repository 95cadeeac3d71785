// A local stand-in for AI Studio built from real parts: an HTTPS front for
// aistudio.baidu.com on loopback, and a real JupyterLab (3.6 or 4) running as an
// unprivileged container user behind it. Reproduces the facts in
// ../shared/reference/platform-facts.md that the extension depends on (see README there).
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureJupyterVenvs } from '../../scripts/toolchain.mjs';

export const AISTUDIO_HOST = 'aistudio.baidu.com';
/** The container's notebook user, as on AI Studio. */
export const CONTAINER_USER = 'aistudio';
/** What AI Studio answers on Jupyter URLs while it restores the persistent home. */
export const RESTORE_STATUS = 492;
export const RESTORE_BODY = '数据未下载完，请稍后重试';

const freePort = () => new Promise((resolve, reject) => {
  const server = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    server.close(() => resolve(port));
  }).on('error', reject);
});

function ensureContainerUser() {
  try {
    execFileSync('id', [CONTAINER_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/bash', CONTAINER_USER]);
  }
  return execFileSync('getent', ['passwd', CONTAINER_USER], { encoding: 'utf8' }).split(':')[5];
}

/** SIGTERM to a process group, then SIGKILL whatever of it is left after 10 s. */
async function stopProcessGroup(pgid) {
  const alive = () => { try { process.kill(-pgid, 0); return true; } catch { return false; } };
  try { process.kill(-pgid, 'SIGTERM'); } catch { return; }
  for (let waited = 0; alive() && waited < 10_000; waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (alive()) process.kill(-pgid, 'SIGKILL');
}

/** A self-signed certificate for aistudio.baidu.com; Chromium is told to accept it for tests. */
function testCertificate(dir) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2', '-subj', `/CN=${AISTUDIO_HOST}`,
    '-addext', `subjectAltName=DNS:${AISTUDIO_HOST}`], { stdio: 'ignore' });
  return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
}

const cookies = (header = '') => Object.fromEntries(header.split(';').map((c) => c.trim().split('=')).filter(([k]) => k));
const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const SESSION_COOKIE = 'aistudio_sim_session';

/** The IDE shell page: shows the restore messages, then embeds the lab in a same-origin iframe. */
const idePage = (base) => `<!doctype html><html><head><meta charset="utf-8"><title>BML CodeLab</title></head>
<body><div id="sync-status">syncing</div><div id="ide"></div>
<script>
(async function poll() {
  const state = await (await fetch('${base}__simulator/state')).json();
  document.getElementById('sync-status').textContent = state.restoreMessage;
  if (state.restoring) return setTimeout(poll, 300);
  const frame = document.createElement('iframe');
  frame.src = '${base}lab';
  frame.style.cssText = 'width:100%;height:90vh;border:0';
  document.getElementById('ide').append(frame);
})();
</script></body></html>`;

/**
 * Starts the front on 127.0.0.1:443 and a JupyterLab as the container user.
 * @param {{ jupyterlab?: '3.6' | '4', zone?: string, userId?: string, projectId?: string, restoreSeconds?: number }} options
 */
export async function startSimulator({
  jupyterlab = '3.6', zone = 'bd-cpu-01', userId = '1234567', projectId = '7892508', restoreSeconds = 3,
} = {}) {
  if (process.getuid?.() !== 0) throw new Error('the simulator needs root: it creates the container user and binds port 443');
  const venv = ensureJupyterVenvs()[`jupyterlab-${jupyterlab}`];
  if (!venv) throw new Error(`no venv for JupyterLab ${jupyterlab}`);
  const home = ensureContainerUser();
  mkdirSync(join(home, 'work'), { recursive: true });
  execFileSync('chown', ['-R', `${CONTAINER_USER}:`, join(home, 'work')]);
  const dir = mkdtempSync(join(tmpdir(), 'aistudio-sim-'));
  const base = `/${zone}/user/${userId}/${projectId}/`;
  const token = randomBytes(16).toString('hex');
  const jupyterPort = await freePort();

  const jupyter = spawn('runuser', ['-u', CONTAINER_USER, '--', 'env', `HOME=${home}`, `PATH=${venv}/bin:/usr/bin:/bin`,
    `${venv}/bin/jupyter`, 'lab', '--no-browser', '--ip=127.0.0.1', `--port=${jupyterPort}`,
    `--ServerApp.base_url=${base}`, `--ServerApp.token=${token}`, `--ServerApp.root_dir=${home}`,
    // Requests arrive through the front with Host: aistudio.baidu.com, as on AI Studio.
    '--ServerApp.allow_remote_access=True'],
  { cwd: home, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let jupyterLog = '';
  jupyter.stderr.on('data', (chunk) => { jupyterLog = (jupyterLog + chunk).slice(-20_000); });
  // The restore window starts once the container's Jupyter runs (set below).
  let restoreUntil = Infinity;
  const restoring = () => Date.now() < restoreUntil;

  const tls = testCertificate(dir);
  const front = https.createServer(tls, (request, response) => {
    const url = new URL(request.url, `https://${AISTUDIO_HOST}`);
    if (!url.pathname.startsWith(base)) return void response.writeHead(404).end('not found');
    const rest = url.pathname.slice(base.length);
    if (rest === '__simulator/state') {
      // "syncing" for the first half of the window, then "Unzipping files", as the IDE page shows.
      const half = restoreUntil - restoreSeconds * 500;
      const restoreMessage = restoring() ? (Date.now() < half ? 'syncing' : 'Unzipping files') : 'ready';
      return void response.writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ restoring: restoring(), restoreMessage }));
    }
    if (rest === 'home') {
      // The site's login cookie; the browser never sees Jupyter's token.
      return void response.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'set-cookie': `${SESSION_COOKIE}=${randomBytes(8).toString('hex')}; Path=/; Secure; HttpOnly; SameSite=Lax`,
      }).end(idePage(base));
    }
    const jar = cookies(request.headers.cookie);
    if (!jar[SESSION_COOKIE]) return void response.writeHead(403).end('not logged in');
    if (restoring()) return void response.writeHead(RESTORE_STATUS, { 'content-type': 'text/plain; charset=utf-8' }).end(RESTORE_BODY);
    if (UNSAFE_METHODS.has(request.method) && (!jar._xsrf || request.headers['x-xsrftoken'] !== jar._xsrf)) {
      return void response.writeHead(403).end('_xsrf argument missing from POST');
    }
    const upstream = http.request({
      host: '127.0.0.1', port: jupyterPort, method: request.method, path: request.url,
      headers: { ...request.headers, authorization: `token ${token}` },
    }, (answer) => {
      response.writeHead(answer.statusCode, answer.headers);
      answer.pipe(response);
    });
    upstream.on('error', () => response.writeHead(502).end('jupyter not reachable'));
    request.pipe(upstream);
  });
  const sockets = new Set();
  front.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  front.on('upgrade', (request, socket, head) => {
    if (!cookies(request.headers.cookie)[SESSION_COOKIE] || restoring()) return void socket.destroy();
    const upstream = net.connect(jupyterPort, '127.0.0.1', () => {
      const headers = { ...request.headers, authorization: `token ${token}` };
      const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}`);
      upstream.write(`${request.method} ${request.url} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
      upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
  });
  try {
    await new Promise((resolve, reject) => front.listen(443, '127.0.0.1', resolve).on('error', reject));
  } catch (error) {
    await stopProcessGroup(jupyter.pid);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`the simulator cannot listen on 127.0.0.1:443: ${error.message}`);
  }

  const simulator = {
    origin: `https://${AISTUDIO_HOST}`,
    baseUrl: `https://${AISTUDIO_HOST}${base}`,
    ideUrl: `https://${AISTUDIO_HOST}${base}home`,
    jupyterlab,
    projectId,
    zone,
    /** Stops the front and every process of the Jupyter server by its process group. */
    async stop() {
      await stopProcessGroup(jupyter.pid);
      // Upgraded (WebSocket) connections are not the server's any more: end them too.
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => front.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => jupyterLog,
  };
  // Jupyter answers /api/status once it runs (straight to it, not through the front's restore window).
  const deadline = Date.now() + 60_000;
  for (;;) {
    const up = await fetch(`http://127.0.0.1:${jupyterPort}${base}api/status`, {
      headers: { authorization: `token ${token}` },
    }).then((r) => r.ok, () => false);
    if (up) {
      restoreUntil = Date.now() + restoreSeconds * 1000;
      return simulator;
    }
    if (Date.now() > deadline || jupyter.exitCode !== null) {
      await simulator.stop();
      throw new Error(`JupyterLab ${jupyterlab} did not start:\n${jupyterLog}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
