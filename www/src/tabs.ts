// What the background learns of tabs from its content scripts: the notebook a frame shows
// (read from the browser's sender fields, never from what the page says), its Jupyter being
// ready, what happened while it waited or ran cells; and forgetting a tab that went elsewhere.
import type {
  CellAction, CellPlan, ConnectionEvent, NotebookLocation, ProjectStatus,
} from '../../build/wasm/aistudio_ssh.js';
import { probeAgainAfterMs } from '../../build/wasm/aistudio_ssh.js';
import { planOnReady, recordEvent, showBadge } from './connection';
import { ensureProjectKeys } from './keys';
import { CELLS_PORT, type TabNotebook } from './messages';
import { ext } from './platform';
import type { Sender } from './requestTable';
import { locate } from './selfHosted';
import { forgetTabNotebook, readStatus, readTabNotebook, writeTabNotebook } from './storage';

/** "I run in this frame": the notebook its URL shows, if any. */
export async function pageOpened(sender: Sender): Promise<NotebookLocation | null> {
  // The browser sets sender.url to the frame's URL; nothing the page says is used. No keys
  // yet: a notebook-shaped URL is no notebook until its Jupyter answers (jupyterReady).
  const location = await locate(sender.url ?? '');
  if (location && sender.tab?.id !== undefined) {
    // The IDE page and its lab iframe both report; keep what is known of the same notebook.
    const known = await readTabNotebook(sender.tab.id);
    // A reloaded page (top frame) starts over: its server may be a new container still restoring.
    if (known?.baseUrl !== location.baseUrl || sender.frameId === 0) {
      await writeTabNotebook(sender.tab.id, location);
    }
  }
  return location;
}

/** The frame's Jupyter Server answers (it started at `started`): what to run, if anything. */
export async function jupyterReady(
  sender: Sender, started: string,
): Promise<{ notebook: TabNotebook; plan: CellPlan | null } | null> {
  // Recorded only for a tab whose frame was recognised as a notebook.
  const location = await locate(sender.url ?? '');
  if (!location || sender.tab?.id === undefined) return null;
  // A real notebook answered: the project gets its keys now, before any rendering.
  await ensureProjectKeys(location.projectId);
  const known = await readTabNotebook(sender.tab.id);
  // The first frame to reach Jupyter runs the cells for the tab (the IDE page or its lab iframe).
  const frameId = known?.baseUrl === location.baseUrl && known.frameId !== undefined ? known.frameId : sender.frameId;
  const notebook: TabNotebook = { ...location, jupyterStarted: started, frameId };
  await writeTabNotebook(sender.tab.id, notebook);
  const plan = frameId === sender.frameId ? await planOnReady(location.projectId, started, location.zone) : null;
  await showBadge(sender.tab.id, await readStatus(location.projectId));
  return { notebook, plan };
}

/** What happened in the frame's notebook while it waited or ran cells. */
export async function frameEvent(sender: Sender, event: ConnectionEvent): Promise<ProjectStatus | null> {
  const location = await locate(sender.url ?? '');
  if (!location) return null;
  return recordEvent(location.projectId, event);
}

/**
 * A probe's output from a frame's cells: the status it makes, and when to probe again
 * (`null`: that was the last probe of this action).
 */
export async function probed(
  sender: Sender, output: string, action: CellAction, tries: number,
): Promise<{ status: ProjectStatus | null; againAfterMs: number | null }> {
  const status = await frameEvent(sender, { kind: 'probed', output });
  return { status, againAfterMs: status ? probeAgainAfterMs(action, status, tries) ?? null : null };
}

/**
 * A tab that navigates elsewhere no longer shows the notebook it showed. The lab iframe
 * loading also reports "loading"; the tab's URL (visible on AI Studio pages only) tells the
 * two apart.
 */
export async function tabLoading(tabId: number, tabUrl: string | undefined): Promise<void> {
  const known = await readTabNotebook(tabId);
  const now = tabUrl ? await locate(tabUrl) : null;
  if (known && now?.baseUrl !== known.baseUrl) await forgetTabNotebook(tabId);
}

export const tabClosed = (tabId: number) => forgetTabNotebook(tabId);

/**
 * A content script holds a port open while it runs cells. Closed while the project still
 * shows "running" means the page went away mid-run: say so, and let the next page run again.
 */
export function watchCellsPort(port: chrome.runtime.Port, ready: Promise<unknown>): void {
  if (port.name !== CELLS_PORT || port.sender?.id !== ext.runtime.id) return;
  const url = port.sender.url ?? '';
  port.onDisconnect.addListener(() => void ready.then(async () => {
    const location = await locate(url);
    if (location && (await readStatus(location.projectId))?.phase === 'running') {
      await recordEvent(location.projectId, { kind: 'failed', reason: 'the notebook page closed or reloaded while the cells ran' });
    }
  }));
}
