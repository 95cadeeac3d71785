// The simulator's front: aistudio.baidu.com over HTTPS on 127.0.0.1:443, as AI Studio's
// gateway behaves before the container's Jupyter: the IDE page, the login and project
// cookies, the cold start and restore window, Tornado's `_xsrf` rule, `api_serving/`, and
// WebSockets forwarded (and cut) the way the gateway does it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';

export const AISTUDIO_HOST = 'aistudio.baidu.com';
/**
 * The same container's Jupyter as a server of the user's own would show it: another origin,
 * no AI Studio login page or restore window (the browser is already logged in to it).
 */
export const SELF_HOSTED_HOST = 'jupyter.example.test';
/** What AI Studio answers on Jupyter URLs while it restores the persistent home. */
export const RESTORE_STATUS = 492;
export const RESTORE_BODY = '数据未下载完，请稍后重试';

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
 * The front, before the container it forwards to: `base()` and `jupyter()` (`{ port, token }`,
 * or undefined between containers) say where that is now. The container's life reaches it
 * through `containerSpawned()`, `containerUp()` and `containerGone()`.
 */
export class Front {
  #options;
  #server;
  // The cold start, then the restore window, start once the container's Jupyter runs.
  #coldUntil = 0;
  #restoreUntil = Infinity;
  #loggedOut = false;
  /** How long the IDE page's HTML takes after its headers (a slow page load). */
  #idePageDelayMs = 0;
  // The project cookies the gateway sets on a GET of the IDE page; new for every container.
  #projectCookies = {};
  /** Every POST/PUT/PATCH/DELETE under the base: how many `_xsrf` cookies it carried, and whether it was refused. */
  #unsafeRequests = [];
  #sockets = new Set();
  /** WebSockets through the front, each with what it goes to ('base' or 'api_serving'). */
  #webSockets = new Map();
  /** The path (under the base) of every WebSocket opened through the front, in order. */
  #webSocketsOpened = [];
  #cutTimer;

  /**
   * @param {{ dir: string, base: () => string, jupyter: () => ({ port: number, token: string } | undefined),
   *   jupyterlab: '3.6' | '4', userId: string, projectId: string, restoreSeconds: number, coldStartSeconds: number,
   *   ide: 'lab' | 'vscode', siteXsrf: boolean, refuseContentsWrites: boolean, webSocketCuts: boolean }} options
   */
  constructor(options) {
    this.#options = options;
    this.#server = https.createServer(testCertificate(options.dir), (request, response) => this.#serve(request, response));
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    this.#server.on('upgrade', (request, socket, head) => this.#upgrade(request, socket, head));
    if (options.webSocketCuts) {
      const schedule = () => {
        this.#cutTimer = setTimeout(() => { this.cutBaseWebSockets(); schedule(); }, 60_000 + Math.random() * 240_000);
        this.#cutTimer.unref();
      };
      schedule();
    }
  }

  /** Listens on 127.0.0.1:443. */
  listen() {
    return new Promise((resolve, reject) => this.#server.listen(443, '127.0.0.1', resolve).on('error', reject));
  }

  /** Stops the random WebSocket cuts, if on. */
  stopCuts() { clearTimeout(this.#cutTimer); }

  /** Closes the listener; resolves once every connection is gone. */
  close() { return new Promise((resolve) => this.#server.close(resolve)); }

  /** A new container's Jupyter runs but does not answer yet: restoring until it is up. */
  containerSpawned() { this.#restoreUntil = Infinity; }

  /** The container's Jupyter answers: the cold start and restore window begin, with new project cookies. */
  containerUp() {
    const { coldStartSeconds, restoreSeconds, userId, projectId } = this.#options;
    this.#coldUntil = Date.now() + coldStartSeconds * 1000;
    this.#restoreUntil = this.#coldUntil + restoreSeconds * 1000;
    this.#projectCookies = {
      'ide-proxy': randomBytes(12).toString('hex'),
      [`user-${userId}-${projectId}`]: randomBytes(12).toString('hex'),
    };
  }

  /** The container is gone: so is every connection through the front. */
  containerGone() {
    for (const socket of this.#sockets) socket.destroy();
    this.#webSockets.clear();
  }

  get #cold() { return Date.now() < this.#coldUntil; }
  get #restoring() { return !this.#cold && Date.now() < this.#restoreUntil; }
  /** When the current restore window ends (ms since the epoch). */
  get restoreEndsAt() { return this.#restoreUntil; }
  /** Whether the cold start is on (the restore window follows it). */
  get starting() { return this.#cold; }

  /** The gateway forgets the login: REST answers a login page, WebSocket upgrades are refused. */
  expireLogin() { this.#loggedOut = true; }
  logIn() { this.#loggedOut = false; }
  slowIdePage(ms) { this.#idePageDelayMs = ms; }
  unsafeRequests() { return [...this.#unsafeRequests]; }
  webSocketsOpened() { return [...this.#webSocketsOpened]; }

  /**
   * Cuts the base path's WebSockets as the gateway does ("no pong within 20 s"), or only those
   * whose path (under the base) starts with `prefix`; returns how many.
   */
  cutBaseWebSockets(prefix = '') {
    let cut = 0;
    for (const [socket, { kind, path }] of this.#webSockets) {
      if (kind === 'base' && path.startsWith(prefix)) { socket.destroy(); cut += 1; }
    }
    return cut;
  }

  /** Whether the project cookies of the current container are all in `jar`. */
  #hasProjectCookies(jar) {
    return Object.entries(this.#projectCookies).every(([name, value]) => jar[name] === value);
  }

  #serve(request, response) {
    const base = this.#options.base();
    const url = new URL(request.url, `https://${AISTUDIO_HOST}`);
    if (!url.pathname.startsWith(base)) return void response.writeHead(404).end('not found');
    const rest = url.pathname.slice(base.length);
    if (rest === '__simulator/state') return void this.#serveState(url, response);
    if (rest === 'home') return void this.#serveIdePage(response);
    const jar = cookies(request.headers.cookie);
    const selfHosted = request.headers.host === SELF_HOSTED_HOST;
    if (!selfHosted && !jar[SESSION_COOKIE]) return void response.writeHead(403).end('not logged in');
    if (!selfHosted && this.#loggedOut) {
      // An expired login: the gateway's login page, with 200, where JSON was asked for.
      return void response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(LOGIN_PAGE);
    }
    if (!selfHosted && this.#cold) {
      // A cold instance: an HTML page first, then 502s, then the restore window.
      const htmlPhase = Date.now() < this.#coldUntil - this.#options.coldStartSeconds * 500;
      return void (htmlPhase
        ? response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(COLD_PAGE)
        : response.writeHead(502, { 'content-type': 'text/html' }).end('<html><body>502 Bad Gateway</body></html>'));
    }
    const jupyter = this.#options.jupyter();
    if (!jupyter || (!selfHosted && this.#restoring)) {
      return void response.writeHead(RESTORE_STATUS, { 'content-type': 'text/plain; charset=utf-8' }).end(RESTORE_BODY);
    }
    if (rest.startsWith(API_SERVING)) return void this.#serveApiServing(request, response, rest, jar);
    if (this.#options.jupyterlab === '4' && rest.startsWith('notebooks/')) {
      // JupyterLab 4 alone has no classic notebook page (3.6 brings nbclassic); AI Studio's
      // older links then end in the lab, as a redirect here.
      return void response.writeHead(302, { location: `${base}lab/tree/${rest.slice('notebooks/'.length)}` }).end();
    }
    if (this.#options.refuseContentsWrites && request.method === 'PUT' && rest.startsWith('api/contents/')) {
      // Reported on some AI Studio containers.
      return void response.writeHead(405, { 'content-type': 'text/plain' }).end('Method Not Allowed');
    }
    // Tornado's check (Jupyter itself is reached with its token, which skips it): the header
    // must equal the last `_xsrf` of the Cookie header, which is the one Tornado keeps.
    if (UNSAFE_METHODS.has(request.method)) {
      const refused = !jar._xsrf || request.headers['x-xsrftoken'] !== jar._xsrf;
      const xsrfCookies = (request.headers.cookie ?? '').split(';').filter((c) => c.trim().startsWith('_xsrf=')).length;
      this.#unsafeRequests.push({ method: request.method, path: rest, xsrfCookies, refused });
      if (refused) {
        return void response.writeHead(403, { 'content-type': 'application/json' })
          .end(JSON.stringify({ message: 'XSRF cookie does not match POST argument', reason: null }));
      }
    }
    this.#forwardToJupyter(request, response, rest, jupyter);
  }

  /** The IDE page's view of the restore window, and (`siteXsrf`) the site's own `_xsrf` once the editor is in. */
  #serveState(url, response) {
    // "syncing" for the first half of the window, then "Unzipping files", as the IDE page shows.
    const half = this.#restoreUntil - this.#options.restoreSeconds * 500;
    const waiting = this.#cold || this.#restoring;
    const restoreMessage = waiting ? (Date.now() < half ? 'syncing' : 'Unzipping files') : 'ready';
    const headers = { 'content-type': 'application/json' };
    if (this.#options.siteXsrf && url.searchParams.get('editor') === 'ready') {
      // The site's own _xsrf on `/`, with a value of its own (not Tornado's format), once
      // Jupyter may have set its own under the base.
      headers['set-cookie'] = `_xsrf=${randomBytes(16).toString('hex').slice(0, 32)}Zz; Path=/; Secure; SameSite=Lax`;
    }
    response.writeHead(200, headers).end(JSON.stringify({ restoring: waiting, restoreMessage }));
  }

  #serveIdePage(response) {
    const base = this.#options.base();
    // The site's login cookie and the project cookies api_serving needs; the browser never
    // sees Jupyter's token.
    response.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'set-cookie': [
        `${SESSION_COOKIE}=${randomBytes(8).toString('hex')}; Path=/; Secure; HttpOnly; SameSite=Lax`,
        ...Object.entries(this.#projectCookies).map(([name, value]) => `${name}=${value}; Path=${base}; Secure; HttpOnly`),
      ],
    });
    // Headers first: the browser commits the navigation (the old page is gone) and waits.
    response.flushHeaders();
    const body = idePage(base, this.#options.ide);
    if (this.#idePageDelayMs) setTimeout(() => response.end(body), this.#idePageDelayMs);
    else response.end(body);
  }

  /** To Jupyter with its token; the platform picks a terminal's name, so a requested one is ignored. */
  #forwardToJupyter(request, response, rest, { port, token }) {
    const dropBody = request.method === 'POST' && /^api\/terminals\/?$/.test(rest);
    const headers = { ...request.headers, authorization: `token ${token}` };
    if (dropBody) { delete headers['content-length']; delete headers['transfer-encoding']; }
    const upstream = http.request({
      host: '127.0.0.1', port, method: request.method, path: request.url, headers,
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
  }

  /**
   * `api_serving/<port>/<path>`: a web service of the user's in the container, as the gateway
   * serves it: only with the project cookies of the current container, the path %-decoded
   * once (non-ASCII: 400), the query string dropped.
   */
  #serveApiServing(request, response, rest, jar) {
    if (!this.#hasProjectCookies(jar)) {
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

  /** A WebSocket to Jupyter (with its token) or to an `api_serving/<port>/` service, piped through. */
  #upgrade(request, socket, head) {
    const selfHosted = request.headers.host === SELF_HOSTED_HOST;
    const jar = cookies(request.headers.cookie);
    const jupyter = this.#options.jupyter();
    if (!jupyter || (!selfHosted && (!jar[SESSION_COOKIE] || this.#loggedOut || this.#cold || this.#restoring))) {
      return void socket.destroy();
    }
    const rest = new URL(request.url, `https://${AISTUDIO_HOST}`).pathname.slice(this.#options.base().length);
    const serving = /^api_serving\/(\d+)\//.exec(rest);
    if (serving && !this.#hasProjectCookies(jar)) return void socket.destroy();
    const { port, token } = jupyter;
    const target = serving ? Number(serving[1]) : port;
    const path = serving ? `/${rest.slice(serving[0].length)}` : request.url;
    // As nginx (tcp_nodelay on, its default), the front sends what it gets at once.
    socket.setNoDelay(true);
    const upstream = net.connect(target, '127.0.0.1', () => {
      upstream.setNoDelay(true);
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
    this.#webSocketsOpened.push(rest);
    this.#webSockets.set(socket, { kind, path: rest });
    socket.on('close', () => this.#webSockets.delete(socket));
    // api_serving's WebSockets were seen cut about every 2.3 s.
    if (serving) setTimeout(() => socket.destroy(), 2_000 + Math.random() * 1_000);
  }
}
