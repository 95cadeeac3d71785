// Content script on AI Studio pages (every frame). Thin: it tells the background which
// frame it runs in (the Rust core decides whether that is a notebook), then asks the
// page's own Jupyter Server, from the page origin and with the site's cookies, when it
// started. No wasm here: a page's CSP may forbid it.
import { send } from './messages';

/** AI Studio answers this while it restores the persistent home after a start. */
const RESTORING_STATUS = 492;
const RETRY_MS = 2_000;
/** A restore of a large ~/work can take minutes; past this, something else is wrong. */
const GIVE_UP_MS = 30 * 60_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** `GET <base>api/status`, waiting out the restore window. */
async function jupyterStatus(baseUrl: string): Promise<{ started: string }> {
  const deadline = Date.now() + GIVE_UP_MS;
  for (;;) {
    const response = await fetch(`${baseUrl}api/status`, { credentials: 'same-origin', cache: 'no-store' });
    if (response.ok) return (await response.json()) as { started: string };
    if (response.status !== RESTORING_STATUS || Date.now() > deadline) {
      throw new Error(`${baseUrl}api/status answered ${response.status}`);
    }
    await sleep(RETRY_MS);
  }
}

async function run(): Promise<void> {
  const location = await send({ kind: 'pageOpened' });
  if (!location) return;
  const { started } = await jupyterStatus(location.baseUrl);
  await send({ kind: 'jupyterReady', started });
}

run().catch((error: unknown) => {
  console.warn('AI Studio SSH:', error);
});
