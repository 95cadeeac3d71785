// The page's own Jupyter Server, reached from the content script with the page's origin
// and the site's cookies: REST with the _xsrf header, and a terminal (or, where terminals
// are off, a kernel) of our own over its WebSocket. Neither waits for the notebook's own
// kernel. What frames mean is decided by the core (through the background).
import { send } from './messages';

/** AI Studio answers this while it restores the persistent home after a start. */
export const RESTORING_STATUS = 492;
const EXECUTE_TIMEOUT_MS = 180_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function cookie(name: string): string | undefined {
  return document.cookie.split('; ').find((c) => c.startsWith(`${name}=`))?.slice(name.length + 1);
}

export class JupyterServer {
  constructor(readonly baseUrl: string) {}

  /** Jupyter sets `_xsrf` when it serves a page; the IDE frame may run before the lab did. */
  private async xsrf(): Promise<string> {
    if (!cookie('_xsrf')) await fetch(`${this.baseUrl}lab`, { credentials: 'same-origin' });
    return cookie('_xsrf') ?? '';
  }

  async request(path: string, method = 'GET', body?: unknown): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (method !== 'GET') headers['X-XSRFToken'] = await this.xsrf();
    return fetch(`${this.baseUrl}${path}`, {
      method, headers, credentials: 'same-origin', cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  async json<T>(path: string, method = 'GET', body?: unknown): Promise<T> {
    const response = await this.request(path, method, body);
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

/** Resolves when `settled()` says so after a message, rejects on timeout or close. */
function untilSettled(socket: WebSocket, onMessage: (data: string) => Promise<boolean>): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`no end of the cell in ${EXECUTE_TIMEOUT_MS / 1000} s`)), EXECUTE_TIMEOUT_MS);
    const listener = (message: MessageEvent) => {
      if (typeof message.data !== 'string') return;
      void onMessage(message.data).then((done) => { if (done) finish(); });
    };
    const closed = () => finish(new Error('the WebSocket closed'));
    function finish(error?: Error) {
      clearTimeout(timer);
      socket.removeEventListener('message', listener);
      socket.removeEventListener('close', closed);
      if (error) reject(error); else resolve();
    }
    socket.addEventListener('message', listener);
    socket.addEventListener('close', closed);
  });
}

export class OwnTerminal implements CellRunner {
  constructor(private readonly server: JupyterServer, readonly name: string, private readonly socket: WebSocket) {}

  async execute(source: string): Promise<CellResult> {
    if (this.socket.readyState !== WebSocket.OPEN) throw new Error('the terminal WebSocket closed');
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
    const done = untilSettled(this.socket, async (data) => {
      const [type, text] = JSON.parse(data) as [string, unknown];
      if (type !== 'stdout' || typeof text !== 'string') return false;
      stdout += text;
      sendReadyLines();
      if (next < lines.length) return false;
      const read = await send({ kind: 'terminalOutput', stdout, nonce });
      if (read) result ??= { ok: read.exitCode === 0, output: read.output };
      return Boolean(read);
    });
    sendReadyLines();
    await done;
    return result as CellResult;
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

type KernelEvent =
  | { kind: 'stream'; name: string; text: string }
  | { kind: 'error'; ename: string; evalue: string }
  | { kind: 'reply'; status: string }
  | { kind: 'idle' }
  | { kind: 'other' };

export class OwnKernel implements CellRunner {
  constructor(
    private readonly server: JupyterServer,
    readonly id: string,
    private readonly session: string,
    private readonly socket: WebSocket,
  ) {}

  /** Runs `code`; resolves once the reply and the kernel's idle both arrived (all output in). */
  async execute(code: string): Promise<CellResult> {
    if (this.socket.readyState !== WebSocket.OPEN) throw new Error('the kernel WebSocket closed');
    const { requestId, frame } = await send({ kind: 'executeRequest', code, session: this.session });
    let output = '';
    let status: string | undefined;
    let idle = false;
    let error = '';
    const done = untilSettled(this.socket, async (frame) => {
      const event = (await send({ kind: 'kernelMessage', frame, requestId })) as KernelEvent;
      if (event.kind === 'stream') output += event.text;
      else if (event.kind === 'error') error = `${event.ename}: ${event.evalue}`;
      else if (event.kind === 'reply') status = event.status;
      else if (event.kind === 'idle') idle = true;
      return status !== undefined && idle;
    });
    this.socket.send(frame);
    await done;
    return { ok: status === 'ok', output: error ? `${output}${error}\n` : output };
  }

  /** Closes the WebSocket and shuts the kernel down: nothing of ours is left running in Jupyter. */
  async close(): Promise<void> {
    this.socket.close();
    await this.server.request(`api/kernels/${this.id}`, 'DELETE').catch(() => undefined);
  }
}

/**
 * How long to wait before asking again, `waitedMs` into a restore: a 492 is a tiny answer
 * and most restores end within a minute, so ask often at first (SSH soon after it ends),
 * then back off for the long ones.
 */
function restorePollInterval(waitedMs: number): number {
  if (waitedMs < 60_000) return 100;
  if (waitedMs < 5 * 60_000) return 1_000;
  return 3_000;
}

/** `GET <base>api/status`, waiting out the restore window; `onRestoring` is told once. */
export async function jupyterStatus(server: JupyterServer, giveUpMs: number, onRestoring: () => void): Promise<{ started: string }> {
  const deadline = Date.now() + giveUpMs;
  let told = false;
  for (;;) {
    const response = await server.request('api/status');
    if (response.ok) return (await response.json()) as { started: string };
    if (response.status !== RESTORING_STATUS || Date.now() > deadline) {
      throw new Error(`${server.baseUrl}api/status answered ${response.status}`);
    }
    if (!told) onRestoring();
    told = true;
    await sleep(restorePollInterval(Date.now() - (deadline - giveUpMs)));
  }
}
