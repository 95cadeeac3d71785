// A local stand-in for AI Studio built from real parts: an HTTPS front for
// aistudio.baidu.com on loopback, a real JupyterLab (3.6 or 4) running as an unprivileged
// container user behind it, and a real root sshd as the container's port 22. Reproduces the facts in
// ../shared/reference/platform-facts.md that the extension depends on (see README there).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync,
} from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureJupyterVenvs } from './jupyterlab-venvs.mjs';

export const AISTUDIO_HOST = 'aistudio.baidu.com';
/**
 * The same container's Jupyter as a server of the user's own would show it: another origin,
 * no AI Studio login page or restore window (the browser is already logged in to it).
 */
export const SELF_HOSTED_HOST = 'jupyter.example.test';
/** The container's notebook user, as on AI Studio. */
export const CONTAINER_USER = 'aistudio';
/** What AI Studio answers on Jupyter URLs while it restores the persistent home. */
export const RESTORE_STATUS = 492;
export const RESTORE_BODY = '数据未下载完，请稍后重试';

/** A TCP port on loopback nobody listens on now. */
export const freePort = () => new Promise((resolve, reject) => {
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
export async function stopProcessGroup(pgid) {
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
/** The platform's path to a user's web service in the container: `<base>api_serving/<port>/`. */
const API_SERVING = 'api_serving/';
const SESSION_COOKIE = 'aistudio_sim_session';

/**
 * The IDE shell page: shows the restore messages, then embeds the lab in a same-origin
 * iframe, or (`ide: 'vscode'`, AI Studio's VS Code editor at `home#codelab`) an editor that is
 * no Jupyter page at all: no lab iframe. Once the editor is in, the page tells the site
 * (`__simulator/state?editor=ready`), which may set its own `_xsrf` then.
 */
const idePage = (base, ide) => `<!doctype html><html><head><meta charset="utf-8"><title>BML CodeLab</title></head>
<body><div id="sync-status">syncing</div><div id="ide"></div>
<script>
(async function poll() {
  const state = await (await fetch('${base}__simulator/state')).json();
  document.getElementById('sync-status').textContent = state.restoreMessage;
  if (state.restoring) return setTimeout(poll, 300);
  const ready = () => fetch('${base}__simulator/state?editor=ready');
  if (${JSON.stringify(ide)} === 'vscode') {
    const editor = document.createElement('div');
    editor.id = 'vscode-editor';
    editor.textContent = 'VS Code (simulated): no JupyterLab here';
    document.getElementById('ide').append(editor);
    return void ready();
  }
  const frame = document.createElement('iframe');
  frame.src = '${base}lab';
  frame.style.cssText = 'width:100%;height:90vh;border:0';
  frame.addEventListener('load', ready, { once: true });
  document.getElementById('ide').append(frame);
})();
</script></body></html>`;

/** What the gateway serves for an expired login, where Jupyter's JSON was asked for. */
const LOGIN_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>登录百度帐号</title>
<script src="https://passport.baidu.com/passApi/js/uni_login_wrapper.js"></script></head>
<body><div id="login">请登录</div></body></html>`;
/** What a cold instance's gateway serves before Jupyter is up (then 502s). */
const COLD_PAGE = '<!doctype html><html><head><title>AI Studio</title></head><body>环境启动中…</body></html>';

/**
 * Starts the front on 127.0.0.1:443 and a JupyterLab as the container user.
 * @param {{ jupyterlab?: '3.6' | '4', zone?: string, userId?: string, projectId?: string, restoreSeconds?: number }} options
 */
/** Zones by accelerator; AI Studio's zone names vary, and are not a reliable CPU/GPU signal. */
const ZONES = { cpu: 'bd-cpu-01', gpu: 'bd-gpu-01', dcu: 'bd-gpu-04' };
/** A stand-in for a Sugon/Hygon DCU's `hy-smi` (rocm-smi's product lines); on PATH only on DCU machines. */
const HY_SMI = `#!/bin/sh
echo "============================ System Management Interface ============================"
echo "DCU[0]		: Card series: 		K100_AI"
echo "DCU[0]		: Card vendor: 		Chengdu Haiguang IC Design Co., Ltd."
`;
/** A stand-in for the V100's `nvidia-smi` (this machine has no GPU); on PATH only on GPU machines. */
const NVIDIA_SMI = `#!/bin/sh
if [ "$1" = "-L" ]; then echo "GPU 0: Tesla V100-SXM2-32GB (UUID: GPU-5a1d0000-aist-udio-0000-simulator00)"; exit 0; fi
echo "| NVIDIA-SMI 470.82.01    Driver Version: 470.82.01    CUDA Version: 11.4 |"
echo "|   0  Tesla V100-SXM2...  On   | 00000000:00:08.0 Off |                    0 |"
`;

/** The relay stands on its own loopback address, so it can serve port 443 beside the front. */
export const RELAY_ADDRESS = '127.0.0.2';
export const RELAY_PORT = 443;
/** The tunnel-only account the extension's relay setup script expects by default. */
export const RELAY_USER = 'aistudio-tunnel';

/** Removes the tunnel account the relay script made (and its sessions), if there is one. */
function removeRelayUser() {
  spawnSync('pkill', ['-KILL', '-u', RELAY_USER]);
  spawnSync('userdel', [RELAY_USER]);
}

/**
 * A relay server: a root sshd on 127.0.0.2:443 with a drop-in directory, where the
 * extension's relay setup script runs for real (its sshd paths redirected here). The
 * script makes the tunnel account itself (it refuses one it did not make) and keeps its
 * keys in a root-owned folder: one under /run, as sshd refuses keys below /tmp.
 */
function startRelay(dir) {
  const relayDir = join(dir, 'relay');
  mkdirSync(join(relayDir, 'sshd_config.d'), { recursive: true });
  // A relay nobody set up yet: no account or keys of an earlier run.
  removeRelayUser();
  const keysDir = mkdtempSync('/run/aistudio-sim-relay-');
  chmodSync(keysDir, 0o755);
  const hostKey = join(relayDir, 'ssh_host_ed25519_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  const config = join(relayDir, 'sshd_config');
  const pidFile = join(relayDir, 'sshd.pid');
  writeFileSync(config, `Include ${relayDir}/sshd_config.d/*.conf\nPort ${RELAY_PORT}\nListenAddress ${RELAY_ADDRESS}\n`
    + `HostKey ${hostKey}\nPidFile ${pidFile}\nUsePAM no\nPasswordAuthentication no\n`
    + 'KbdInteractiveAuthentication no\nAuthorizedKeysFile .ssh/authorized_keys\n');
  mkdirSync('/run/sshd', { recursive: true });
  execFileSync('/usr/sbin/sshd', ['-f', config, '-E', join(relayDir, 'sshd.log')]);
  return {
    host: RELAY_ADDRESS,
    port: RELAY_PORT,
    user: RELAY_USER,
    hostKey: readFileSync(`${hostKey}.pub`, 'utf8').trim(),
    /** Runs the relay setup script the extension printed, as its user would (as root). */
    setUp(script) {
      const scriptFile = join(relayDir, 'relay-setup.sh');
      writeFileSync(scriptFile, script, { mode: 0o700 });
      const run = spawnSync('bash', [scriptFile], {
        encoding: 'utf8',
        env: {
          ...process.env,
          AISTUDIO_SSH_SSHD_CONFIG: config,
          AISTUDIO_SSH_SSHD_DROPIN_DIR: join(relayDir, 'sshd_config.d'),
          AISTUDIO_SSH_RELAY_KEYS_DIR: join(keysDir, 'aistudio-ssh'),
          AISTUDIO_SSH_SSHD_RELOAD: `kill -HUP $(cat ${pidFile})`,
        },
      });
      if (run.status !== 0) throw new Error(`the relay setup script exited ${run.status}:\n${run.stderr}${run.stdout}`);
      return run.stdout;
    },
    log: () => readFileSync(join(relayDir, 'sshd.log'), 'utf8'),
    stop() {
      try { process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGTERM'); } catch { /* already gone */ }
      // Tunnel sessions are children of the listener but outlive it; end them as a shutdown
      // would, and leave no account behind.
      removeRelayUser();
      rmSync(keysDir, { recursive: true, force: true });
    },
  };
}

const EMPTY_NOTEBOOK = {
  cells: [], metadata: { kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' } },
  nbformat: 4, nbformat_minor: 5,
};
/** Sends `time.sleep(600)` to a kernel and leaves without waiting: the kernel stays busy. */
const BUSY_KERNEL_CLIENT = `
import sys, time
from jupyter_client import BlockingKernelClient, find_connection_file
client = BlockingKernelClient(connection_file=find_connection_file(f"kernel-{sys.argv[1]}.json"))
client.load_connection_file()
client.start_channels()
client.wait_for_ready(timeout=30)
request = client.execute("import time\\ntime.sleep(600)")
deadline = time.time() + 30
while time.time() < deadline:
    message = client.get_iopub_msg(timeout=30)
    if message["parent_header"].get("msg_id") == request and message["msg_type"] == "status" \\
            and message["content"]["execution_state"] == "busy":
        break
client.stop_channels()
`;

/** Starts a root sshd on 127.0.0.1:22 with `hostKey`: the container's own sshd on port 22. */
function startSystemSshd(machineDir) {
  mkdirSync('/run/sshd', { recursive: true });
  const config = join(machineDir, 'sshd_config');
  writeFileSync(config, `Port 22\nListenAddress 127.0.0.1\nHostKey ${join(machineDir, 'ssh_host_ed25519_key')}\n`
    + `PidFile ${join(machineDir, 'sshd.pid')}\nUsePAM no\nPasswordAuthentication no\n`);
  execFileSync('/usr/sbin/sshd', ['-f', config, '-E', join(machineDir, 'sshd.log')]);
}

/** A machine: its zone, whether it has a GPU, and its system sshd host key (made once). */
function newMachine(dir, accelerator, serial) {
  const machineDir = join(dir, `machine-${serial}-${accelerator}`);
  mkdirSync(machineDir, { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(machineDir, 'ssh_host_ed25519_key')]);
  const gpuBin = join(machineDir, 'bin');
  const tool = { gpu: ['nvidia-smi', NVIDIA_SMI], dcu: ['hy-smi', HY_SMI] }[accelerator];
  if (tool) {
    mkdirSync(gpuBin, { mode: 0o755 });
    writeFileSync(join(gpuBin, tool[0]), tool[1], { mode: 0o755 });
  }
  return { dir: machineDir, accelerator, zone: ZONES[accelerator], pathPrefix: tool ? `${gpuBin}:` : '' };
}

/**
 * Starts the front on 127.0.0.1:443 and a container: a JupyterLab as the container user and a
 * root sshd on 127.0.0.1:22. Controls: `restart()` (new container, same machine: HOME wiped
 * except work/ and data/, fresh /tmp), `switchTo('cpu' | 'gpu')` (another machine: the zone in
 * the URL, the system host key and nvidia-smi / hy-smi change), `stop()`.
 *
 * What a real AI Studio client logged (platform-facts.md), as switches: `ide: 'vscode'` (an
 * IDE page with no lab iframe), `siteXsrf` (the site sets its own `_xsrf` on `/` once the
 * editor is in, beside Jupyter's), `coldStartSeconds` (HTML, then 502, before the restore
 * window), `expireLogin()` / `logIn()` (a login page for REST, WebSocket upgrades refused),
 * `cutWebSockets()` and `webSocketCuts` (base-path WebSockets cut at random every 1-5 min),
 * `api_serving/<port>/` (project cookies, one layer of %-decoding, no query, its WebSockets cut
 * every 2-3 s). Always: `POST api/terminals` picks the name, the container's LANG names a
 * locale it lacks (en_US.UTF-8 beside C, C.UTF-8, POSIX).
 * @param {{ jupyterlab?: '3.6' | '4', accelerator?: 'cpu' | 'gpu' | 'dcu', userId?: string, projectId?: string,
 *   restoreSeconds?: number, coldStartSeconds?: number, ide?: 'lab' | 'vscode', siteXsrf?: boolean,
 *   webSocketCuts?: boolean }} options
 */
export async function startSimulator({
  jupyterlab = '3.6', accelerator = 'cpu', userId = '1234567', projectId = '7892508', restoreSeconds = 3,
  refuseContentsWrites = false, terminals = true, coldStartSeconds = 0, ide = 'lab', siteXsrf = false,
  webSocketCuts = false,
} = {}) {
  if (process.getuid?.() !== 0) throw new Error('the simulator needs root: it creates the container user and binds ports 443 and 22');
  const venv = ensureJupyterVenvs()[`jupyterlab-${jupyterlab}`];
  if (!venv) throw new Error(`no venv for JupyterLab ${jupyterlab}`);
  const home = ensureContainerUser();
  const dir = mkdtempSync(join(tmpdir(), 'aistudio-sim-'));
  chmodSync(dir, 0o755);
  let machines = 0;
  let machine = newMachine(dir, accelerator, machines++);
  let container; // { jupyter, port, token, base, log }
  // The cold start, then the restore window, start once the container's Jupyter runs.
  let coldUntil = 0;
  let restoreUntil = Infinity;
  const cold = () => Date.now() < coldUntil;
  const restoring = () => !cold() && Date.now() < restoreUntil;
  let loggedOut = false;
  // The project cookies the gateway sets on a GET of the IDE page; new for every container.
  let projectCookies = {};
  const base = () => `/${machine.zone}/user/${userId}/${projectId}/`;

  async function startContainer() {
    for (const kept of ['work', 'data']) mkdirSync(join(home, kept), { recursive: true });
    execFileSync('chown', ['-R', `${CONTAINER_USER}:`, home]);
    startSystemSshd(machine.dir);
    const port = await freePort();
    const token = randomBytes(16).toString('hex');
    const jupyter = spawn('runuser', ['-u', CONTAINER_USER, '--', 'env', `HOME=${home}`,
      // AI Studio's images name a locale they do not have (only C, C.UTF-8 and POSIX here).
      'LANG=en_US.UTF-8',
      `PATH=${machine.pathPrefix}${venv}/bin:/usr/bin:/bin`, `${venv}/bin/jupyter`, 'lab', '--no-browser',
      '--ip=127.0.0.1', `--port=${port}`, `--ServerApp.base_url=${base()}`, `--ServerApp.token=${token}`,
      `--ServerApp.root_dir=${home}`,
      // Requests arrive through the front with Host: aistudio.baidu.com, as on AI Studio.
      '--ServerApp.allow_remote_access=True',
      // Terminals keep the container's environment (a login shell would reset PATH from /etc/profile).
      `--ServerApp.terminado_settings={'shell_command': ['/bin/bash']}`,
      `--ServerApp.terminals_enabled=${terminals ? 'True' : 'False'}`],
    { cwd: home, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    container = { jupyter, port, token, log: '' };
    jupyter.stderr.on('data', (chunk) => { container.log = (container.log + chunk).slice(-20_000); });
    restoreUntil = Infinity;
    const deadline = Date.now() + 60_000;
    for (;;) {
      // Straight to Jupyter, not through the front's restore window.
      const up = await fetch(`http://127.0.0.1:${port}${base()}api/status`, {
        headers: { authorization: `token ${token}` },
      }).then((r) => r.ok, () => false);
      if (up) break;
      if (Date.now() > deadline || jupyter.exitCode !== null) {
        const log = container.log;
        await stopContainer();
        throw new Error(`JupyterLab ${jupyterlab} did not start:\n${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    coldUntil = Date.now() + coldStartSeconds * 1000;
    restoreUntil = coldUntil + restoreSeconds * 1000;
    projectCookies = {
      'ide-proxy': randomBytes(12).toString('hex'),
      [`user-${userId}-${projectId}`]: randomBytes(12).toString('hex'),
    };
  }

  async function stopContainer() {
    if (container) await stopProcessGroup(container.jupyter.pid);
    container = undefined;
    const sshdPid = Number(readFileSync(join(machine.dir, 'sshd.pid'), 'utf8').trim());
    try { process.kill(sshdPid, 'SIGTERM'); } catch { /* already gone */ }
    for (const socket of sockets) socket.destroy();
    webSockets.clear();
  }

  /** A new container: only `kept` of HOME survive (~/work and ~/data on a restart), /tmp is fresh. */
  function wipeContainerFiles(kept = ['work', 'data']) {
    spawnSync('pkill', ['-KILL', '-u', CONTAINER_USER]); // exits 1 when nothing was left: fine
    for (const entry of readdirSync(home)) {
      if (!kept.includes(entry)) rmSync(join(home, entry), { recursive: true, force: true });
    }
    spawnSync('find', ['/tmp', '-xdev', '-mindepth', '1', '-user', CONTAINER_USER, '-delete']);
  }

  /** GET of a Jupyter API, straight to the server with its token. */
  async function jupyterGet(path) {
    const response = await fetch(`http://127.0.0.1:${container.port}${base()}${path}`, {
      headers: { authorization: `token ${container.token}` },
    });
    if (!response.ok) throw new Error(`GET ${path}: ${response.status}`);
    return response.json();
  }

  /** Every POST/PUT/PATCH/DELETE under the base: how many `_xsrf` cookies it carried, and whether it was refused. */
  const unsafeRequests = [];
  const tls = testCertificate(dir);
  const front = https.createServer(tls, (request, response) => {
    const url = new URL(request.url, `https://${AISTUDIO_HOST}`);
    if (!url.pathname.startsWith(base())) return void response.writeHead(404).end('not found');
    const rest = url.pathname.slice(base().length);
    if (rest === '__simulator/state') {
      // "syncing" for the first half of the window, then "Unzipping files", as the IDE page shows.
      const half = restoreUntil - restoreSeconds * 500;
      const waiting = cold() || restoring();
      const restoreMessage = waiting ? (Date.now() < half ? 'syncing' : 'Unzipping files') : 'ready';
      const headers = { 'content-type': 'application/json' };
      if (siteXsrf && url.searchParams.get('editor') === 'ready') {
        // The site's own _xsrf on `/`, with a value of its own (not Tornado's format), once
        // Jupyter may have set its own under the base.
        headers['set-cookie'] = `_xsrf=${randomBytes(16).toString('hex').slice(0, 32)}Zz; Path=/; Secure; SameSite=Lax`;
      }
      return void response.writeHead(200, headers).end(JSON.stringify({ restoring: waiting, restoreMessage }));
    }
    if (rest === 'home') {
      // The site's login cookie and the project cookies api_serving needs; the browser never
      // sees Jupyter's token.
      return void response.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'set-cookie': [
          `${SESSION_COOKIE}=${randomBytes(8).toString('hex')}; Path=/; Secure; HttpOnly; SameSite=Lax`,
          ...Object.entries(projectCookies).map(([name, value]) => `${name}=${value}; Path=${base()}; Secure; HttpOnly`),
        ],
      }).end(idePage(base(), ide));
    }
    const jar = cookies(request.headers.cookie);
    const selfHosted = request.headers.host === SELF_HOSTED_HOST;
    if (!selfHosted && !jar[SESSION_COOKIE]) return void response.writeHead(403).end('not logged in');
    if (!selfHosted && loggedOut) {
      // An expired login: the gateway's login page, with 200, where JSON was asked for.
      return void response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(LOGIN_PAGE);
    }
    if (!selfHosted && cold()) {
      // A cold instance: an HTML page first, then 502s, then the restore window.
      const htmlPhase = Date.now() < coldUntil - coldStartSeconds * 500;
      return void (htmlPhase
        ? response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(COLD_PAGE)
        : response.writeHead(502, { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>'));
    }
    if (!container || (!selfHosted && restoring())) {
      return void response.writeHead(RESTORE_STATUS, { 'content-type': 'text/plain; charset=utf-8' }).end(RESTORE_BODY);
    }
    if (rest.startsWith(API_SERVING)) return void serveApiServing(request, response, rest, jar);
    if (jupyterlab === '4' && rest.startsWith('notebooks/')) {
      // JupyterLab 4 alone has no classic notebook page (3.6 brings nbclassic); AI Studio's
      // older links then end in the lab, as a redirect here.
      return void response.writeHead(302, { location: `${base()}lab/tree/${rest.slice('notebooks/'.length)}` }).end();
    }
    if (refuseContentsWrites && request.method === 'PUT' && rest.startsWith('api/contents/')) {
      // Reported on some AI Studio containers.
      return void response.writeHead(405, { 'content-type': 'text/plain' }).end('Method Not Allowed');
    }
    // Tornado's check (Jupyter itself is reached with its token, which skips it): the header
    // must equal the last `_xsrf` of the Cookie header, which is the one Tornado keeps.
    if (UNSAFE_METHODS.has(request.method)) {
      const refused = !jar._xsrf || request.headers['x-xsrftoken'] !== jar._xsrf;
      const xsrfCookies = (request.headers.cookie ?? '').split(';').filter((c) => c.trim().startsWith('_xsrf=')).length;
      unsafeRequests.push({ method: request.method, path: rest, xsrfCookies, refused });
      if (refused) {
        return void response.writeHead(403, { 'content-type': 'application/json' })
          .end(JSON.stringify({ message: 'XSRF cookie does not match POST argument', reason: null }));
      }
    }
    // The platform picks a terminal's name: a requested one is ignored.
    const dropBody = request.method === 'POST' && /^api\/terminals\/?$/.test(rest);
    const headers = { ...request.headers, authorization: `token ${container.token}` };
    if (dropBody) { delete headers['content-length']; delete headers['transfer-encoding']; }
    const upstream = http.request({
      host: '127.0.0.1', port: container.port, method: request.method, path: request.url, headers,
    }, (answer) => {
      response.writeHead(answer.statusCode, answer.headers);
      answer.pipe(response);
    });
    upstream.on('error', () => response.writeHead(502).end('jupyter not reachable'));
    if (dropBody) {
      request.resume();
      upstream.end();
    } else {
      request.pipe(upstream);
    }
  });

  /**
   * `api_serving/<port>/<path>`: a web service of the user's in the container, as the gateway
   * serves it: only with the project cookies of the current container, the path %-decoded
   * once (non-ASCII: 400), the query string dropped.
   */
  function serveApiServing(request, response, rest, jar) {
    if (Object.entries(projectCookies).some(([name, value]) => jar[name] !== value)) {
      return void response.writeHead(403, { 'content-type': 'text/plain' }).end('no project cookie');
    }
    const [, port, encoded = ''] = /^api_serving\/(\d+)\/?([^?]*)/.exec(rest) ?? [];
    if (!port) return void response.writeHead(404).end('not found');
    let path;
    try {
      path = decodeURIComponent(encoded);
    } catch {
      return void response.writeHead(400).end('bad path');
    }
    if (/[^\x00-\x7f]/.test(path)) return void response.writeHead(400).end('bad path');
    // What reaches the service is the decoded path (one layer of escapes gone); only what a
    // request line cannot hold (blanks, control characters) is escaped again.
    const forwarded = path.replace(/[\x00-\x20\x7f]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}`);
    const upstream = http.request({
      host: '127.0.0.1', port: Number(port), method: request.method, path: `/${forwarded}`,
      headers: { ...request.headers, host: `127.0.0.1:${port}` },
    }, (answer) => {
      response.writeHead(answer.statusCode, answer.headers);
      answer.pipe(response);
    });
    upstream.on('error', () => response.writeHead(502).end('service not reachable'));
    request.pipe(upstream);
  }
  const sockets = new Set();
  front.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  /** WebSockets through the front, each with what it goes to ('base' or 'api_serving'). */
  const webSockets = new Map();
  /** The path (under the base) of every WebSocket opened through the front, in order. */
  const webSocketsOpened = [];
  front.on('upgrade', (request, socket, head) => {
    const selfHosted = request.headers.host === SELF_HOSTED_HOST;
    const jar = cookies(request.headers.cookie);
    if (!container || (!selfHosted && (!jar[SESSION_COOKIE] || loggedOut || cold() || restoring()))) {
      return void socket.destroy();
    }
    const rest = new URL(request.url, `https://${AISTUDIO_HOST}`).pathname.slice(base().length);
    const serving = /^api_serving\/(\d+)\//.exec(rest);
    if (serving && Object.entries(projectCookies).some(([name, value]) => jar[name] !== value)) {
      return void socket.destroy();
    }
    const { port, token } = container;
    const target = serving ? Number(serving[1]) : port;
    const path = serving ? `/${rest.slice(serving[0].length)}` : request.url;
    const upstream = net.connect(target, '127.0.0.1', () => {
      const headers = serving ? request.headers : { ...request.headers, authorization: `token ${token}` };
      const lines = Object.entries(headers).map(([name, value]) => `${name}: ${value}`);
      upstream.write(`${request.method} ${path} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`);
      upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    upstream.on('error', () => socket.destroy());
    socket.on('error', () => upstream.destroy());
    // A cut ends both sides, as at the gateway: Jupyter sees its client go.
    socket.on('close', () => upstream.destroy());
    upstream.on('close', () => socket.destroy());
    const kind = serving ? 'api_serving' : 'base';
    webSocketsOpened.push(rest);
    webSockets.set(socket, { kind, path: rest });
    socket.on('close', () => webSockets.delete(socket));
    // api_serving's WebSockets were seen cut about every 2.3 s.
    if (serving) setTimeout(() => socket.destroy(), 2_000 + Math.random() * 1_000);
  });
  /**
   * Cuts the base path's WebSockets as the gateway does ("no pong within 20 s"), or only those
   * whose path (under the base) starts with `prefix`; returns how many.
   */
  const cutBaseWebSockets = (prefix = '') => {
    let cut = 0;
    for (const [socket, { kind, path }] of webSockets) {
      if (kind === 'base' && path.startsWith(prefix)) { socket.destroy(); cut += 1; }
    }
    return cut;
  };
  let cutTimer;
  if (webSocketCuts) {
    const schedule = () => {
      cutTimer = setTimeout(() => { cutBaseWebSockets(); schedule(); }, 60_000 + Math.random() * 240_000);
      cutTimer.unref();
    };
    schedule();
  }
  let relay;
  try {
    await new Promise((resolve, reject) => front.listen(443, '127.0.0.1', resolve).on('error', reject));
    relay = startRelay(dir);
    // A project never opened before: nothing of earlier runs in the container user's home.
    wipeContainerFiles([]);
    await startContainer();
  } catch (error) {
    relay?.stop();
    front.close();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`the simulator did not start: ${error.message}`);
  }

  const simulator = {
    origin: `https://${AISTUDIO_HOST}`,
    get baseUrl() { return `https://${AISTUDIO_HOST}${base()}`; },
    get ideUrl() { return `https://${AISTUDIO_HOST}${base()}home`; },
    /** The container's Jupyter base URL on the self-hosted origin. */
    get selfHostedBaseUrl() { return `https://${SELF_HOSTED_HOST}${base()}`; },
    get zone() { return machine.zone; },
    get accelerator() { return machine.accelerator; },
    jupyterlab,
    projectId,
    relay,
    /**
     * The open notebook `work/<name>` gets a session whose kernel then runs
     * `time.sleep(600)`: the user's notebook is busy. Returns the notebook's path.
     */
    async busyKernel(name = 'main.ipynb') {
      const path = `work/${name}`;
      const api = (rest, method = 'GET', body) => fetch(`http://127.0.0.1:${container.port}${base()}${rest}`, {
        method,
        headers: { authorization: `token ${container.token}`, 'content-type': 'application/json' },
        body: body && JSON.stringify(body),
      }).then(async (response) => {
        if (!response.ok) throw new Error(`${method} ${rest}: ${response.status} ${await response.text()}`);
        return response.json();
      });
      await api(`api/contents/${path}`, 'PUT', { type: 'notebook', content: EMPTY_NOTEBOOK });
      const session = await api('api/sessions', 'POST', { path, name, type: 'notebook', kernel: { name: 'python3' } });
      // jupyter_client from the container's venv, as the container user, through the kernel's connection file.
      execFileSync('runuser', ['-u', CONTAINER_USER, '--', 'env', `HOME=${home}`, `${venv}/bin/python`, '-c', BUSY_KERNEL_CLIENT,
        session.kernel.id], { stdio: 'ignore', timeout: 60_000 });
      return path;
    },
    /** Runs a notebook's cells top to bottom as its user would by hand (nbconvert --execute, a real kernel). */
    runNotebookByHand(path) {
      return execFileSync('runuser', ['-u', CONTAINER_USER, '--', 'env', `HOME=${home}`,
        `PATH=${machine.pathPrefix}${venv}/bin:/usr/bin:/bin`, `${venv}/bin/jupyter`, 'nbconvert', '--to', 'notebook',
        '--execute', '--stdout', join(home, path)], { cwd: home, encoding: 'utf8', timeout: 180_000, stdio: ['ignore', 'pipe', 'pipe'] });
    },
    /**
     * Runs a notebook's `%%bash` cells, in order, as plain bash in the container without
     * Jupyter: the same scripts, run directly by a shell (the bench's reference). Resolves
     * with bash's exit code once all ran.
     */
    runCellsInShell(path) {
      const notebook = JSON.parse(readFileSync(join(home, path), 'utf8'));
      const scripts = notebook.cells.filter((c) => c.cell_type === 'code')
        .map((cell) => [cell.source].flat().join('').replace(/^%%bash\n/, ''));
      const shell = spawn('runuser', ['-u', CONTAINER_USER, '--', 'env', `HOME=${home}`,
        `PATH=${machine.pathPrefix}/usr/bin:/bin`, 'bash', '-c', scripts.join('\n')], { cwd: home, stdio: 'ignore' });
      return new Promise((resolve) => shell.on('exit', resolve));
    },
    /** A path in the container user's home (to check what the extension left there). */
    containerPath: (relative) => join(home, relative),
    /** When the current restore window ends (ms since the epoch). */
    get restoreEndsAt() { return restoreUntil; },
    /** The execution state Jupyter reports for a kernel ('busy' while it sleeps). */
    async kernelStates() {
      return (await jupyterGet('api/kernels')).map((kernel) => kernel.execution_state);
    },
    /** The names of the terminals Jupyter runs (none when terminals are off). */
    async terminalNames() {
      return terminals ? (await jupyterGet('api/terminals')).map((terminal) => terminal.name) : [];
    },
    /** A new container on the same machine (an environment restart). */
    async restart() {
      await stopContainer();
      wipeContainerFiles();
      await startContainer();
    },
    /** A new container on a CPU or GPU machine: another zone, system host key and accelerator. */
    async switchTo(wanted) {
      await stopContainer();
      wipeContainerFiles();
      machine = newMachine(dir, wanted, machines++);
      await startContainer();
    },
    /** Stops the container's processes by their PIDs and process groups, then the front. */
    async stop() {
      clearTimeout(cutTimer);
      await stopContainer();
      // Whatever else the container ran (the tunnel, a user-mode sshd) ends with it.
      spawnSync('pkill', ['-KILL', '-u', CONTAINER_USER]);
      relay.stop();
      await new Promise((resolve) => front.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
    /** The gateway forgets the login: REST answers a login page, WebSocket upgrades are refused. */
    expireLogin() { loggedOut = true; },
    /** The user logged in again. */
    logIn() { loggedOut = false; },
    /** The unsafe requests so far, as Tornado's XSRF check saw them. */
    unsafeRequests: () => [...unsafeRequests],
    /** The paths (under the base) of the WebSockets opened through the front so far. */
    webSocketsOpened: () => [...webSocketsOpened],
    /** Cuts base-path WebSockets now (those under `prefix`, if given); returns how many. */
    cutWebSockets: cutBaseWebSockets,
    /** Whether a cold start or the restore window is on. */
    get starting() { return cold(); },
    log: () => container?.log ?? '',
  };
  return simulator;
}
