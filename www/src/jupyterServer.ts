// The page's own Jupyter Server, reached from the content script with the page's origin
// and the site's cookies: REST with the _xsrf header, and a terminal (or, where terminals
// are off, a kernel) of our own over its WebSocket. Neither waits for the notebook's own
// kernel. What frames mean is decided by the core (through the background). Runs in the
// content script: no wasm here, only the core's types.
import type { GatewayVerdict } from '../../build/wasm/aistudio_ssh.js';
import { send } from './send';

const EXECUTE_TIMEOUT_MS = 180_000;
/**
 * How often one cell's WebSocket may be reopened after a cut: the gateway cuts base-path
 * WebSockets every few minutes; many cuts within one cell mean something else is wrong.
 */
const REOPENS_PER_CELL = 5;
/** How long a reopened terminal WebSocket may take to replay what the terminal printed. */
const REPLAY_WAIT_MS = 1_000;
/** How much of a body the core reads to tell a login page from a cold instance. */
const BODY_HEAD_CHARS = 2048;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every value of a cookie in `document.cookie`, in the order the browser sends them. */
export function cookieValues(documentCookie: string, name: string): string[] {
  return documentCookie.split('; ').filter((c) => c.startsWith(`${name}=`)).map((c) => c.slice(name.length + 1));
}

/**
 * The `_xsrf` values to send, the one Jupyter checks first. The site keeps an `_xsrf` of its
 * own on `/` beside Jupyter's on the base path; the browser sends both, longest path first
 * (as document.cookie lists them), and Tornado keeps the last it reads.
 */
export function xsrfCandidates(documentCookie: string): string[] {
  return [...new Set(cookieValues(documentCookie, '_xsrf').reverse())];
}

/** An answer of the platform that is not Jupyter's (a login page, a cold instance...), as the core read it. */
export class GatewayError extends Error {
  constructor(readonly verdict: GatewayVerdict, what: string) {
    super(`${what}: ${verdict.answer}`);
    this.name = 'GatewayError';
  }
}

export class JupyterServer {
  constructor(readonly baseUrl: string) {}

  /**
   * The `_xsrf` values to send (see `xsrfCandidates`). Jupyter sets its own only on an HTML
   * page (never on api/*), and only when no `_xsrf` came with the request: one is fetched
   * when the document has none.
   */
  private async xsrfValues(): Promise<string[]> {
    if (cookieValues(document.cookie, '_xsrf').length === 0) {
      await fetch(`${this.baseUrl}lab`, { credentials: 'same-origin', cache: 'no-store' }).catch(() => undefined);
    }
    return xsrfCandidates(document.cookie);
  }

  /** What the core makes of an answer: Jupyter's JSON, or the gateway's restore, cold start, login page... */
  async classify(response: Response, attempt = 1, waitedMs = 0): Promise<GatewayVerdict> {
    const body = await response.clone().text().catch(() => '');
    return send({
      kind: 'classifyAnswer',
      seen: {
        status: response.status,
        contentType: response.headers.get('content-type') ?? '',
        bodyHead: body.slice(0, BODY_HEAD_CHARS),
        redirectedTo: response.type === 'opaqueredirect' ? 'opaque' : response.redirected ? response.url : null,
        baseUrl: this.baseUrl,
      },
      attempt,
      waitedMs,
    });
  }

  /**
   * A request under the base URL; a refused XSRF token is retried once with the other cookie
   * value. `redirect: 'manual'` for a path Jupyter never redirects: the gateway's redirect to
   * a login on another origin then shows as such, where a followed one fails on CORS.
   */
  async request(path: string, method = 'GET', body?: unknown, redirect: RequestRedirect = 'follow'): Promise<Response> {
    const attempt = (xsrf?: string) => fetch(`${this.baseUrl}${path}`, {
      method,
      redirect,
      headers: { 'content-type': 'application/json', ...(xsrf === undefined ? {} : { 'X-XSRFToken': xsrf }) },
      credentials: 'same-origin',
      cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (method === 'GET') return attempt();
    const [first, second] = await this.xsrfValues();
    const response = await attempt(first ?? '');
    if (response.status !== 403 || second === undefined) return response;
    return (await this.classify(response)).answer === 'xsrfRefused' ? attempt(second) : response;
  }

  /** Jupyter's JSON answer; anything else (a login page, a cold instance) is a GatewayError, never a result. */
  async json<T>(path: string, method = 'GET', body?: unknown): Promise<T> {
    const response = await this.request(path, method, body);
    const verdict = await this.classify(response);
    if (verdict.answer !== 'json') throw new GatewayError(verdict, `${method} ${path}`);
    if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}`);
    return (await response.json()) as T;
  }

  /** Opens a WebSocket under the base URL; on failure runs `cleanUp` (deletes what it was for). */
  async socket(path: string, cleanUp: () => Promise<unknown>): Promise<WebSocket> {
    const url = new URL(`${this.baseUrl}${path}`);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(url);
    try {
      await new Promise((resolve, reject) => {
        socket.addEventListener('open', resolve, { once: true });
        socket.addEventListener('error', () => reject(new Error(`the WebSocket ${path} did not open`)), { once: true });
      });
      return socket;
    } catch (error) {
      await cleanUp().catch(() => undefined);
      throw error;
    }
  }

  /** A terminal of our own: it starts in milliseconds. */
  async startTerminal(): Promise<OwnTerminal> {
    const { name } = await this.json<{ name: string }>('api/terminals', 'POST');
    const socket = await this.socket(`terminals/websocket/${name}`, () => this.request(`api/terminals/${name}`, 'DELETE'));
    return new OwnTerminal(this, name, socket);
  }

  /** A kernel of our own on the server's default kernelspec (about a second to start). */
  async startKernel(): Promise<OwnKernel> {
    const specs = await this.json<{ default: string }>('api/kernelspecs');
    const { id } = await this.json<{ id: string }>('api/kernels', 'POST', { name: specs.default });
    const session = crypto.randomUUID();
    const socket = await this.socket(`api/kernels/${id}/channels?session_id=${session}`,
      () => this.request(`api/kernels/${id}`, 'DELETE'));
    return new OwnKernel(this, id, session, socket);
  }

  /** Where cells run: a terminal, or a kernel where the server has terminals turned off. */
  async startRunner(): Promise<CellRunner> {
    try {
      return await this.startTerminal();
    } catch {
      return this.startKernel();
    }
  }
}

/** Runs `%%bash` cells one after another, and is closed after. */
export interface CellRunner {
  execute(source: string): Promise<CellResult>;
  close(): Promise<void>;
}

/** The WebSocket closed under a running cell (the gateway cuts them): reopen and go on. */
class SocketClosed extends Error {
  constructor() {
    super('the WebSocket closed');
    this.name = 'SocketClosed';
  }
}

/** A wait for a cell's end; `recheck()` asks `onMessage` again without a new message. */
type Settling = Promise<void> & { recheck: () => void };

/**
 * Resolves when `onMessage` says so after a message (or a `recheck()`, where it gets `null`:
 * what it waits for may have come with a terminal's replay), rejects on timeout or close.
 */
function untilSettled(socket: WebSocket, onMessage: (data: string | null) => Promise<boolean>): Settling {
  let recheck = () => {};
  const settling = new Promise<void>((resolve, reject) => {
    // Closed while we were busy elsewhere (no listener yet saw it): reopen at once.
    if (socket.readyState !== WebSocket.OPEN) return void reject(new SocketClosed());
    const timer = setTimeout(() => finish(new Error(`no end of the cell in ${EXECUTE_TIMEOUT_MS / 1000} s`)), EXECUTE_TIMEOUT_MS);
    const settle = (data: string | null) => void onMessage(data).then((done) => { if (done) finish(); });
    recheck = () => settle(null);
    const listener = (message: MessageEvent) => {
      if (typeof message.data !== 'string') return;
      settle(message.data);
    };
    const closed = () => finish(new SocketClosed());
    function finish(error?: Error) {
      clearTimeout(timer);
      socket.removeEventListener('message', listener);
      socket.removeEventListener('close', closed);
      if (error) reject(error); else resolve();
    }
    socket.addEventListener('message', listener);
    socket.addEventListener('close', closed);
  });
  return Object.assign(settling, { recheck: () => recheck() });
}

export class OwnTerminal implements CellRunner {
  constructor(private readonly server: JupyterServer, readonly name: string, private socket: WebSocket) {}

  /**
   * Reopens the WebSocket of the same terminal (its shell lives on) and resolves with what the
   * terminal printed so far: terminado answers a client that connects with ["setup"] and then,
   * in one message, the output it kept.
   */
  private async reopen(): Promise<string> {
    const socket = await this.server.socket(`terminals/websocket/${this.name}`, async () => undefined);
    this.socket = socket;
    return new Promise<string>((resolve) => {
      const finish = (replay: string) => {
        clearTimeout(timer);
        socket.removeEventListener('message', listener);
        resolve(replay);
      };
      const timer = setTimeout(() => finish(''), REPLAY_WAIT_MS);
      const listener = (message: MessageEvent) => {
        if (typeof message.data !== 'string') return;
        const [type, text] = JSON.parse(message.data) as [string, unknown];
        if (type === 'stdout' && typeof text === 'string') finish(text);
      };
      socket.addEventListener('message', listener);
    });
  }

  /**
   * Types the cell's lines, each once the previous one's acknowledgement is printed. A cut
   * WebSocket is reopened and the lines go on from the first one acknowledged neither before
   * the cut nor in the terminal's replay (the core says which; see `terminal::resume_at`).
   */
  async execute(source: string): Promise<CellResult> {
    // Cut between two cells (or right after it opened): a new one, nothing to go on from.
    if (this.socket.readyState !== WebSocket.OPEN) await this.reopen();
    const { nonce, lines } = await send({ kind: 'terminalInput', source });
    let stdout = '';
    let result: CellResult | undefined;
    let next = 0;
    /** Sends lines until one whose acknowledgement has not been printed yet. */
    const sendReadyLines = () => {
      while (next < lines.length && (next === 0 || stdout.replace(/\r/g, '').includes(lines[next - 1].waitFor))) {
        this.socket.send(lines[next].frame);
        next += 1;
      }
    };
    const readResult = async () => {
      const read = await send({ kind: 'terminalOutput', stdout, nonce });
      if (read) result ??= { ok: read.exitCode === 0, output: read.output };
      return Boolean(read);
    };
    /** After a reopen: what was seen before the cut and the replay, for the core to resume from. */
    let resumeFrom: string | undefined;
    for (let reopened = 0; ; reopened += 1) {
      // Listening before anything else is awaited: no frame of the new socket goes unread.
      const done = untilSettled(this.socket, async (data) => {
        if (data !== null) {
          const [type, text] = JSON.parse(data) as [string, unknown];
          if (type !== 'stdout' || typeof text !== 'string') return false;
          stdout += text;
        }
        sendReadyLines();
        return next >= lines.length && readResult();
      });
      done.catch(() => undefined); // awaited below
      if (resumeFrom !== undefined) {
        // Acknowledgements seen before the cut still hold, so a line the shell confirmed is
        // never sent again (the first line, which replaces the shell, least of all).
        next = await send({ kind: 'terminalResumeAt', stdout: resumeFrom, lines });
        resumeFrom = undefined;
        // The cell may have ended while the socket was down: its end is in the replay.
        done.recheck();
      }
      sendReadyLines();
      try {
        await done;
        return result as CellResult;
      } catch (error) {
        if (!(error instanceof SocketClosed) || reopened >= REOPENS_PER_CELL) throw error;
        const before = stdout;
        // The replay is everything the terminal printed: it replaces what this run saw.
        const replay = await this.reopen();
        stdout = replay || before;
        resumeFrom = `${before}\n${replay}`;
        next = lines.length; // nothing is sent until the core said where to go on
      }
    }
  }

  /** Closes the WebSocket and the terminal: its shell ends (the tunnel lives in its own session). */
  async close(): Promise<void> {
    this.socket.close();
    await this.server.request(`api/terminals/${this.name}`, 'DELETE').catch(() => undefined);
  }
}

/** What one cell printed and how it ended. */
export interface CellResult {
  ok: boolean;
  output: string;
}

export class OwnKernel implements CellRunner {
  constructor(
    private readonly server: JupyterServer,
    readonly id: string,
    private session: string,
    private socket: WebSocket,
  ) {}

  /** The kernel's WebSocket as it is now (closed after a cut until `execute` or `renew`). */
  get webSocket(): WebSocket {
    return this.socket;
  }

  /**
   * A WebSocket of a new session in place of the current one: Jupyter Server replays what a
   * session missed while it was away, which a new one does not want. Fails when the kernel
   * is gone (the server answers 404).
   */
  async renew(): Promise<WebSocket> {
    this.socket.close();
    const session = crypto.randomUUID();
    this.socket = await this.server.socket(`api/kernels/${this.id}/channels?session_id=${session}`, async () => undefined);
    this.session = session;
    return this.socket;
  }

  /** Runs `code`; resolves once the reply and the kernel's idle both arrived (all output in). */
  async execute(code: string): Promise<CellResult> {
    if (this.socket.readyState !== WebSocket.OPEN) await this.reopen();
    const { requestId, frame } = await send({ kind: 'executeRequest', code, session: this.session });
    let output = '';
    let status: string | undefined;
    let idle = false;
    let error = '';
    const settled = () => untilSettled(this.socket, async (message) => {
      if (message === null) return false;
      const event = await send({ kind: 'kernelMessage', frame: message, requestId });
      if (event.kind === 'stream') output += event.text;
      else if (event.kind === 'error') error = `${event.ename}: ${event.evalue}`;
      else if (event.kind === 'reply') status = event.status;
      else if (event.kind === 'idle') idle = true;
      return status !== undefined && idle;
    });
    let done = settled();
    this.socket.send(frame);
    for (let reopened = 0; ; reopened += 1) {
      try {
        await done;
        return { ok: status === 'ok', output: error ? `${output}${error}\n` : output };
      } catch (closed) {
        if (!(closed instanceof SocketClosed) || reopened >= REOPENS_PER_CELL) throw closed;
        await this.reopen();
        done = settled();
      }
    }
  }

  /** The same session again: Jupyter Server keeps the kernel's messages for it meanwhile. */
  private async reopen(): Promise<void> {
    this.socket = await this.server.socket(`api/kernels/${this.id}/channels?session_id=${this.session}`,
      async () => undefined);
  }

  /** Closes the WebSocket and shuts the kernel down: nothing of ours is left running in Jupyter. */
  async close(): Promise<void> {
    this.socket.close();
    await this.server.request(`api/kernels/${this.id}`, 'DELETE').catch(() => undefined);
  }
}

/** What the platform can answer while Jupyter is not reachable yet, as the popup shows it. */
export type Waiting = Extract<GatewayVerdict['answer'], 'restoring' | 'starting' | 'loggedOut'>;

/**
 * `GET <base>api/status` until Jupyter itself answers, waiting out the restore window, a cold
 * instance and an expired login as the core says (how long between asks, and what is worth
 * asking again); `onWaiting` hears each change of what the platform answers.
 */
export async function jupyterStatus(
  server: JupyterServer, giveUpMs: number, onWaiting: (waiting: Waiting) => void,
): Promise<{ started: string }> {
  const begun = Date.now();
  let last: GatewayVerdict['answer'] | undefined;
  let since = begun;
  let attempt = 0;
  for (;;) {
    const response = await server.request('api/status', 'GET', undefined, 'manual').catch(() => undefined);
    // No answer at all (the gateway dropped the connection) is a cold instance too.
    const classify = () => (response
      ? server.classify(response, attempt + 1, Date.now() - since)
      : Promise.resolve<GatewayVerdict>({ answer: 'starting', retryAfterMs: 2_000 }));
    let verdict = await classify();
    if (verdict.answer === 'json' && response?.ok) return (await response.json()) as { started: string };
    if (verdict.answer !== last) {
      // Another kind of answer: its own retry policy starts over.
      last = verdict.answer;
      since = Date.now();
      attempt = 0;
      verdict = await classify();
      if (verdict.answer === 'restoring' || verdict.answer === 'starting' || verdict.answer === 'loggedOut') {
        onWaiting(verdict.answer);
      }
    }
    attempt += 1;
    // Logged out, it waits for the user as long as the page is open.
    const overdue = verdict.answer !== 'loggedOut' && Date.now() - begun > giveUpMs;
    if (verdict.retryAfterMs === null || overdue) {
      throw new GatewayError(verdict, `${server.baseUrl}api/status answered ${response?.status ?? 'nothing'}`);
    }
    await sleep(verdict.retryAfterMs);
  }
}
