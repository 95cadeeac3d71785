// The page's own Jupyter Server, reached from the content script with the page's origin
// and the site's cookies: REST with the _xsrf header, and a kernel of our own over its
// WebSocket. What frames mean is decided by the core (through the background).
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

  /** A kernel of our own (the notebook's may be busy), on the server's default kernelspec. */
  async startKernel(): Promise<OwnKernel> {
    const specs = await this.json<{ default: string }>('api/kernelspecs');
    const { id } = await this.json<{ id: string }>('api/kernels', 'POST', { name: specs.default });
    const session = crypto.randomUUID();
    const url = new URL(`${this.baseUrl}api/kernels/${id}/channels?session_id=${session}`);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(url);
    try {
      await new Promise((resolve, reject) => {
        socket.addEventListener('open', resolve, { once: true });
        socket.addEventListener('error', () => reject(new Error('the kernel WebSocket did not open')), { once: true });
      });
    } catch (error) {
      await this.request(`api/kernels/${id}`, 'DELETE');
      throw error;
    }
    return new OwnKernel(this, id, session, socket);
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

export class OwnKernel {
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
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer from the kernel in ${EXECUTE_TIMEOUT_MS / 1000} s`)), EXECUTE_TIMEOUT_MS);
      const finish = () => { clearTimeout(timer); this.socket.removeEventListener('message', onMessage); resolve(); };
      const onMessage = (message: MessageEvent) => {
        if (typeof message.data !== 'string') return;
        void send({ kind: 'kernelMessage', frame: message.data, requestId }).then((event) => {
          const e = event as KernelEvent;
          if (e.kind === 'stream') output += e.text;
          else if (e.kind === 'error') error = `${e.ename}: ${e.evalue}`;
          else if (e.kind === 'reply') status = e.status;
          else if (e.kind === 'idle') idle = true;
          if (status !== undefined && idle) finish();
        });
      };
      this.socket.addEventListener('message', onMessage);
      this.socket.addEventListener('close', () => reject(new Error('the kernel WebSocket closed')), { once: true });
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
  if (waitedMs < 60_000) return 250;
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
