// Content script on AI Studio pages (every frame). Thin: it tells the background which
// frame it runs in (the Rust core decides whether that is a notebook), waits out AI
// Studio's restore, and runs the cells the background hands it in a terminal (or kernel) of its own.
// No wasm here (a page's CSP may forbid it), and nothing here listens to the page.
import type { CellPlan, ConnectionEvent } from '../../build/wasm/aistudio_ssh.js';
import { GatewayError, JupyterServer, jupyterStatus } from './jupyterServer';
import { Carrier } from './carrier';
import { CARRIER_PORT, CELLS_PORT, type ContentOrder } from './messages';
import { ext } from './platform';
import { send } from './send';

/** A restore of a large ~/work can take minutes; past this, something else is wrong. */
const GIVE_UP_MS = 30 * 60_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const report = (event: ConnectionEvent) => send({ kind: 'connectionEvent', event });

let server: JupyterServer | undefined;
/** One run at a time in this frame. */
let running: Promise<void> = Promise.resolve();

/** Writes the companion notebook (visible, re-runnable cells); some containers refuse (405). */
async function saveCompanionNotebook(jupyter: JupyterServer, plan: CellPlan): Promise<void> {
  if (!plan.notebookPath) return;
  const existing = await jupyter.json<{ content?: { metadata?: { aistudio_ssh?: { digest?: string } } } }>(
    `api/contents/${plan.notebookPath}?content=1`,
  ).catch(() => undefined);
  if (existing?.content?.metadata?.aistudio_ssh?.digest === plan.notebookDigest) {
    await report({ kind: 'notebookSaved', ok: true, status: 200 });
    return;
  }
  const response = await jupyter.request(`api/contents/${plan.notebookPath}`, 'PUT', {
    type: 'notebook', format: 'json', content: plan.notebook,
  }).catch(() => undefined);
  await report({ kind: 'notebookSaved', ok: Boolean(response?.ok), status: response?.status ?? 0 });
}

async function runPlan(jupyter: JupyterServer, plan: CellPlan): Promise<void> {
  // Starting the runner takes a moment (a kernel most of a second): save the notebook meanwhile.
  const starting = jupyter.startRunner();
  await saveCompanionNotebook(jupyter, plan).catch(() => undefined);
  const runner = await starting;
  try {
    for (const cell of plan.cells) {
      // The step is reported while the cell already runs, and is in before its result is.
      const started = report({ kind: 'stepStarted', step: cell.step });
      if (cell.step !== 'probe') {
        const execution = runner.execute(cell.source);
        execution.catch(() => undefined); // awaited below, after the report
        await started;
        const result = await execution;
        if (!result.ok) {
          await report({ kind: 'stepFailed', step: cell.step, output: result.output });
          return;
        }
        continue;
      }
      // The tunnel reports "up" once ssh held the forward for 3 s; the core says whether
      // and when to probe again.
      await started;
      for (let tries = 1; ; tries += 1) {
        const result = await runner.execute(cell.source);
        const { againAfterMs } = await send({ kind: 'probed', output: result.output, action: plan.action, tries });
        if (againAfterMs === null) break;
        await sleep(againAfterMs);
        await report({ kind: 'stepStarted', step: 'probe' });
      }
    }
    if (plan.action === 'disconnect') await report({ kind: 'disconnected' });
  } finally {
    await runner.close();
  }
}

function run(plan: CellPlan): Promise<void> {
  const jupyter = server;
  running = running.then(async () => {
    if (!jupyter) throw new Error('this frame has no notebook');
    // Open while the cells run: if this page closes or reloads, the background sees the
    // port close and knows nobody is running them any more.
    const alive = ext.runtime.connect({ name: CELLS_PORT });
    try {
      await runPlan(jupyter, plan);
    } finally {
      alive.disconnect();
    }
  }).catch(async (error: unknown) => {
    // A login page where Jupyter's answer was due: say so, not "failed" with its HTML, and
    // wait for the login as a page that opens does.
    if (error instanceof GatewayError && error.verdict.answer === 'loggedOut') {
      await report({ kind: 'loggedOut' });
      void waitForJupyter();
      return;
    }
    await report({ kind: 'failed', reason: error instanceof Error ? error.message : String(error) });
  });
  return running;
}

// The background opens a carrier port into the notebook's frame for direct mode.
ext.runtime.onConnect.addListener((port) => {
  if (port.name !== CARRIER_PORT || port.sender?.id !== ext.runtime.id || port.sender.tab) return;
  if (server) new Carrier(server, port);
  else port.disconnect();
});

// Orders come from the background only: a page cannot reach runtime.onMessage, and the
// sender check keeps other extensions' content scripts out too.
ext.runtime.onMessage.addListener((order: ContentOrder, sender) => {
  if (sender.id !== ext.runtime.id || sender.tab || order?.kind !== 'run') return false;
  void run(order.plan);
  return false;
});

/** Waits until the notebook's Jupyter answers (restore, cold start, login), then tells the background. */
async function waitForJupyter(): Promise<void> {
  if (!server) return;
  try {
    const { started } = await jupyterStatus(server, GIVE_UP_MS, (waiting) => void report({ kind: waiting }));
    const ready = await send({ kind: 'jupyterReady', started });
    if (ready?.plan) await run(ready.plan);
  } catch (error) {
    await report({ kind: 'failed', reason: `AI Studio did not answer: ${error instanceof Error ? error.message : String(error)}` });
  }
}

async function start(): Promise<void> {
  const location = await send({ kind: 'pageOpened' });
  if (!location) return;
  server = new JupyterServer(location.baseUrl);
  await waitForJupyter();
}

start().catch((error: unknown) => {
  console.warn('AI Studio SSH:', error);
});
