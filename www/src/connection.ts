// Connection state in the background: the core's status transitions applied one at a time,
// shown on the project's tabs and the toolbar badge, and the cells a tab's notebook runs.
import {
  applyConnectionEvent, autoConnectAfter, connectsByItself, projectView as coreProjectView, statusBadge,
} from '../../build/wasm/aistudio_ssh.js';
import type { CellAction, CellPlan, ConnectionEvent, ProjectStatus, ProjectView } from '../../build/wasm/aistudio_ssh.js';
import { storedProjectKeys } from './keys';
import type { ContentOrder, TabNotebook } from './messages';
import { ext } from './platform';
import { namedError } from './requestTable';
import { autoConnect, projectSettings, readRelay, setAutoConnect, withRendered } from './settings';
import {
  AUTO_CONNECT_KEY, allTabNotebooks, readLocal, readStatus, readTabNotebook, serialized, takeConnectWish, wishToConnect,
  writeStatus,
} from './storage';

/** Tabs that show a project's notebook, with what is known of each. */
async function tabsOfProject(projectId: string): Promise<[number, TabNotebook][]> {
  return (await allTabNotebooks()).filter(([, notebook]) => notebook.projectId === projectId);
}

export async function showBadge(tabId: number, status: ProjectStatus | undefined): Promise<void> {
  const badge = status ? statusBadge(status) : { text: '', color: '#9e9e9e' };
  await ext.action.setBadgeText({ tabId, text: badge.text });
  await ext.action.setBadgeBackgroundColor({ tabId, color: badge.color });
}

/** Applies an event to a project's status (one at a time per project) and shows it on its tabs. */
export function recordEvent(projectId: string, event: ConnectionEvent): Promise<ProjectStatus> {
  return serialized(`status:${projectId}`, async () => {
    // Events arrive before the notebook answers (its restore): they make no keys. The host key
    // matters only to a probe, which runs cells rendered with the keys.
    const keys = await storedProjectKeys(projectId);
    const before = (await readStatus(projectId)) ?? null;
    const status = applyConnectionEvent(before, event, keys?.containerHost?.public.fingerprint ?? '');
    await writeStatus(projectId, status);
    const autoConnectNow = autoConnectAfter(status, await readLocal(AUTO_CONNECT_KEY));
    if (autoConnectNow !== undefined) await setAutoConnect(autoConnectNow);
    for (const [tabId] of await tabsOfProject(projectId)) await showBadge(tabId, status).catch(() => undefined);
    return status;
  });
}

/**
 * When a notebook's Jupyter is ready: the cells to run if the extension connects by itself
 * (marked running at once, so a second frame or tab of the project does not run them too).
 */
export async function planOnReady(projectId: string, started: string, zone: string): Promise<CellPlan | null> {
  const plan = await withRendered(projectId, (project) => project.cellPlan('connect'));
  if (!plan) {
    await recordEvent(projectId, { kind: 'noSettings' });
    return null;
  }
  return serialized(`ready:${projectId}`, async () => {
    const status = await recordEvent(projectId, { kind: 'jupyterReady', started, zone });
    const wanted = await takeConnectWish(projectId);
    if (!wanted && !connectsByItself(status, true, await autoConnect())) return null;
    await recordEvent(projectId, { kind: 'stepStarted', step: 'provision' });
    return plan;
  });
}

/** The notebook a tab shows, once its Jupyter answered. */
async function readyNotebook(tabId: number): Promise<TabNotebook> {
  const notebook = await readTabNotebook(tabId);
  if (!notebook?.jupyterStarted || notebook.frameId === undefined) {
    throw namedError('NoNotebook', 'this tab shows no AI Studio notebook whose Jupyter answers yet');
  }
  return notebook;
}

/** Orders the content script of the notebook's frame to run cells; the popup follows the status. */
export async function runInTab(tabId: number, action: CellAction): Promise<ProjectStatus | null> {
  const seen = await readTabNotebook(tabId);
  if (action === 'connect' && seen && !seen.jupyterStarted) {
    // Still restoring: the content script connects as soon as Jupyter answers.
    await wishToConnect(seen.projectId);
    return readStatus(seen.projectId).then((status) => status ?? null);
  }
  const notebook = await readyNotebook(tabId);
  const plan = await withRendered(notebook.projectId, (project) => project.cellPlan(action));
  if (!plan) return recordEvent(notebook.projectId, { kind: 'noSettings' });
  const order: ContentOrder = { kind: 'run', plan };
  const status = await recordEvent(notebook.projectId, { kind: 'stepStarted', step: order.plan.cells[0].step });
  void ext.tabs.sendMessage(tabId, order, { frameId: notebook.frameId }).catch((error: unknown) =>
    recordEvent(notebook.projectId, { kind: 'failed', reason: `the notebook page did not answer: ${String(error)}` }));
  return status;
}

/** What the popup shows; opening it makes no keys (the core names the host without them). */
export async function projectView(projectId: string): Promise<ProjectView> {
  return coreProjectView(
    projectId, (await readRelay()) ?? null, await projectSettings(projectId), (await readStatus(projectId)) ?? null,
  );
}
