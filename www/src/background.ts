// Background service worker (Chromium) / event page (Firefox): hosts the wasm core and
// answers the other contexts. Kept minimal: it wires events to core calls.
import init, {
  clientKeyComment, coreVersion, encryptPrivateKey, executeRequest, importClientKey, isProjectId,
  checkSelfHosted, classifyAnswer, companionNotebookPath, hostAlias as coreHostAlias, readKernelMessage, readTerminalOutput, terminalInput, terminalResumeAt,
} from '../../build/wasm/aistudio_ssh.js';
import {
  ensureProjectKeys, generateKey, migrateKeys, projectsWithKeys, replaceClientKey, storedProjectKeys,
} from './keys';
import {
  autoConnect, cellPlan, planOnReady, projectSettings, readRelay, readStatus, readTabNotebook, recordEvent, rendered,
  saveProjectSettings, saveRelay, setAutoConnect, showBadge, wishToConnect,
} from './connection';
import { CELLS_PORT, tabKey } from './messages';
import type {
  CellPlan, ClientKeySource, ContentOrder, Envelope, KeyFile, KeyView, ProjectKeys, ProjectKeysView,
  ProjectView, Replies, Request, StoredKey, TabNotebook,
} from './messages';
import { ext, keepStorageFromContentScripts } from './platform';
import {
  addSelfHosted, listSelfHosted, locate, removeSelfHosted, syncContentScripts,
} from './selfHosted';

// Instantiated once per worker life. Listeners must be registered synchronously at the top
// level (a worker woken by an event runs this file again), so handlers await it instead.
const core = init();

// For the DevTools console and `npm run bench`: the same key making the extension uses.
Object.assign(globalThis, { aistudioSsh: { core, generateKey } });

// At every start: settings and status out of content scripts' reach where the browser allows
// it, and keys an earlier version kept in storage.local moved into IndexedDB.
void keepStorageFromContentScripts();
void migrateKeys().catch((error: unknown) => console.warn('AI Studio SSH: keys not moved yet:', error));

function namedError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

function checkedProjectId(projectId: string): string {
  if (!isProjectId(projectId)) {
    throw namedError('InvalidProjectId', `project id ${JSON.stringify(projectId)} is not letters, digits, - or _`);
  }
  return projectId;
}

function keyView(key: StoredKey | null | undefined): KeyView | null {
  return key ? { ...key.public, hasPrivateKey: Boolean(key.privateKey) } : null;
}

function projectView(projectId: string, keys: ProjectKeys): ProjectKeysView {
  return {
    projectId,
    client: keyView(keys.client),
    containerRelay: keyView(keys.containerRelay),
    containerHost: keyView(keys.containerHost),
  };
}

async function clientKeyFrom(projectId: string, source: ClientKeySource): Promise<StoredKey> {
  switch (source.kind) {
    case 'generate':
      return generateKey(source.algorithm, clientKeyComment(projectId));
    case 'pasted':
      return importClientKey(source.text, source.passphrase || undefined) as StoredKey;
  }
}

/** The client key as files named the way users expect; protected when a passphrase is given. */
async function exportClientKey(projectId: string, passphrase?: string) {
  const client = (await storedProjectKeys(projectId))?.client;
  if (!client) throw namedError('NoClientKey', `project ${projectId} has no client key yet`);
  const files = [{ name: 'id_aistudio.pub', text: `${client.public.line}\n` }];
  if (client.privateKey) {
    const text = passphrase ? encryptPrivateKey(client.privateKey, passphrase) : client.privateKey;
    files.unshift({ name: 'id_aistudio', text });
  }
  return files;
}

/** The user's files for a project: ssh config, known_hosts, the client key, the relay setup script. */
async function bundle(projectId: string, passphrase?: string): Promise<KeyFile[]> {
  const render = await rendered(projectId);
  if (!render) throw namedError('NoRelay', 'set up the relay in the options first');
  return [
    { name: 'ssh_config', text: render.rendered.sshConfig },
    { name: 'known_hosts', text: render.rendered.knownHosts },
    ...(await exportClientKey(projectId, passphrase)),
    { name: 'relay-setup.sh', text: render.rendered.relaySetup },
  ];
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
async function runInTab(tabId: number, action: CellPlan['action']) {
  const seen = await readTabNotebook(tabId);
  if (action === 'connect' && seen && !seen.jupyterStarted) {
    // Still restoring: the content script connects as soon as Jupyter answers.
    await wishToConnect(seen.projectId);
    return readStatus(seen.projectId).then((status) => status ?? null);
  }
  const notebook = await readyNotebook(tabId);
  const render = await rendered(notebook.projectId);
  if (!render) return recordEvent(notebook.projectId, { kind: 'noSettings' });
  const order: ContentOrder = { kind: 'run', plan: cellPlan(action, render.rendered) };
  const status = await recordEvent(notebook.projectId, { kind: 'stepStarted', step: order.plan.cells[0].step });
  void ext.tabs.sendMessage(tabId, order, { frameId: notebook.frameId }).catch((error: unknown) =>
    recordEvent(notebook.projectId, { kind: 'failed', reason: `the notebook page did not answer: ${String(error)}` }));
  return status;
}

/** What the popup shows; opening it makes no keys (the core names the host without them). */
async function projectStatusView(projectId: string): Promise<ProjectView> {
  const hostAlias = coreHostAlias(projectId);
  return {
    projectId,
    hasRelay: Boolean(await readRelay()),
    status: (await readStatus(projectId)) ?? null,
    hostAlias,
    command: `ssh ${hostAlias}`,
    notebookPath: companionNotebookPath(),
  };
}

async function handle(request: Request, sender: chrome.runtime.MessageSender): Promise<Replies[Request['kind']]> {
  await core;
  switch (request.kind) {
    case 'coreInfo':
      return { coreVersion: coreVersion() };
    case 'pageOpened': {
      // The browser sets sender.url to the frame's URL; nothing the page says is used. No keys
      // yet: a notebook-shaped URL is no notebook until its Jupyter answers (jupyterReady).
      const location = await locate(sender.url ?? '');
      if (location && sender.tab?.id !== undefined) {
        // The IDE page and its lab iframe both report; keep what is known of the same notebook.
        const known = await readTabNotebook(sender.tab.id);
        // A reloaded page (top frame) starts over: its server may be a new container still restoring.
        if (known?.baseUrl !== location.baseUrl || sender.frameId === 0) {
          await ext.storage.session.set({ [tabKey(sender.tab.id)]: location });
        }
      }
      return location;
    }
    case 'jupyterReady': {
      // Recorded only for a tab whose frame was recognised as a notebook.
      const location = await locate(sender.url ?? '');
      if (!location || sender.tab?.id === undefined) return null;
      // A real notebook answered: the project gets its keys now, before any rendering.
      await ensureProjectKeys(location.projectId);
      const known = await readTabNotebook(sender.tab.id);
      const started = String(request.started);
      // The first frame to reach Jupyter runs the cells for the tab (the IDE page or its lab iframe).
      const frameId = known?.baseUrl === location.baseUrl && known.frameId !== undefined ? known.frameId : sender.frameId;
      const notebook: TabNotebook = { ...location, jupyterStarted: started, frameId };
      await ext.storage.session.set({ [tabKey(sender.tab.id)]: notebook });
      const plan = frameId === sender.frameId ? await planOnReady(location.projectId, started, location.zone) : null;
      await showBadge(sender.tab.id, await readStatus(location.projectId));
      return { notebook, plan };
    }
    case 'connectionEvent': {
      const location = await locate(sender.url ?? '');
      if (!location) return null;
      return recordEvent(location.projectId, request.event);
    }
    case 'executeRequest': {
      const requestId = crypto.randomUUID();
      return { requestId, frame: executeRequest(requestId, request.session, request.code, new Date().toISOString()) };
    }
    case 'terminalInput': {
      const nonce = crypto.randomUUID().replace(/-/g, '');
      return { nonce, lines: terminalInput(request.source, nonce) as Replies['terminalInput']['lines'] };
    }
    case 'classifyAnswer':
      return classifyAnswer(request.seen, request.attempt, request.waitedMs) as Replies['classifyAnswer'];
    case 'terminalResumeAt':
      return terminalResumeAt(request.stdout, request.lines);
    case 'terminalOutput':
      return readTerminalOutput(request.stdout, request.nonce) as Replies['terminalOutput'];
    case 'kernelMessage':
      return readKernelMessage(request.frame, request.requestId) as unknown;
    case 'relaySettings':
      return { relay: (await readRelay()) ?? null, autoConnect: await autoConnect() };
    case 'saveRelay':
      return saveRelay(request.relay);
    case 'setAutoConnect':
      await setAutoConnect(Boolean(request.autoConnect));
      return autoConnect();
    case 'checkSelfHosted':
      return checkSelfHosted(request.input) as Replies['checkSelfHosted'];
    case 'addSelfHosted':
      return addSelfHosted(request.input);
    case 'selfHostedServers':
      return (await listSelfHosted()).map((server) => ({ ...server, hostAlias: coreHostAlias(server.name) }));
    case 'removeSelfHosted':
      await removeSelfHosted(request.name);
      return null;
    case 'projectSettings':
      return projectSettings(checkedProjectId(request.projectId));
    case 'saveProjectSettings':
      return saveProjectSettings(checkedProjectId(request.projectId), request.settings);
    case 'relayScript': {
      const render = await rendered(checkedProjectId(request.projectId));
      if (!render) throw namedError('NoRelay', 'set up the relay first');
      return render.rendered.relaySetup;
    }
    case 'projectView':
      return projectStatusView(checkedProjectId(request.projectId));
    case 'connect':
      return runInTab(request.tabId, 'connect');
    case 'disconnect':
      return runInTab(request.tabId, 'disconnect');
    case 'bundle':
      return bundle(checkedProjectId(request.projectId), request.passphrase);
    case 'companionNotebook': {
      const render = await rendered(checkedProjectId(request.projectId));
      if (!render) throw namedError('NoRelay', 'set up the relay first');
      return [{ name: 'aistudio-ssh.ipynb', text: `${JSON.stringify(render.rendered.notebook, null, 1)}\n` }];
    }
    case 'tabNotebook':
      return (await readTabNotebook(request.tabId)) ?? null;
    case 'projectKeys': {
      const projectId = checkedProjectId(request.projectId);
      return projectView(projectId, await ensureProjectKeys(projectId));
    }
    case 'listProjects':
      return projectsWithKeys();
    case 'exportClientKey':
      return exportClientKey(checkedProjectId(request.projectId), request.passphrase);
    case 'replaceClientKey': {
      const projectId = checkedProjectId(request.projectId);
      const client = await clientKeyFrom(projectId, request.source);
      return projectView(projectId, await replaceClientKey(projectId, client));
    }
    default:
      throw namedError('UnknownRequest', `unknown request ${JSON.stringify((request as { kind?: unknown }).kind)}`);
  }
}

/** What a content script may ask; keys and settings are for extension pages only. */
const CONTENT_SCRIPT_REQUESTS: ReadonlySet<Request['kind']> = new Set([
  'coreInfo', 'pageOpened', 'jupyterReady', 'connectionEvent', 'classifyAnswer', 'executeRequest', 'kernelMessage',
  'terminalInput', 'terminalResumeAt', 'terminalOutput',
]);
const fromExtensionPage = (sender: chrome.runtime.MessageSender) =>
  sender.url?.startsWith(ext.runtime.getURL('')) ?? false;

ext.runtime.onMessage.addListener((request: Request, sender, sendResponse) => {
  // Only our own pages and content scripts; web pages cannot reach this listener
  // (no externally_connectable), and this check keeps it so.
  if (sender.id !== ext.runtime.id) return false;
  const allowed = fromExtensionPage(sender) || CONTENT_SCRIPT_REQUESTS.has(request.kind);
  const reply = allowed
    ? handle(request, sender)
    : Promise.reject(namedError('Forbidden', `${request.kind} is only answered to extension pages`));
  reply.then(
    (value) => sendResponse({ ok: true, value } satisfies Envelope<unknown>),
    (error: unknown) => {
      const { name, message } = error instanceof Error ? error : new Error(String(error));
      sendResponse({ ok: false, error: { name, message } } satisfies Envelope<unknown>);
    },
  );
  return true; // the reply is sent asynchronously
});

// The content script for self-hosted servers follows the origins the user grants or revokes
// (also on chrome://extensions); registrations persist, this keeps them true at every start.
void core.then(syncContentScripts);
ext.permissions.onAdded.addListener(() => void core.then(syncContentScripts));
ext.permissions.onRemoved.addListener(() => void core.then(syncContentScripts));

// A tab that navigates elsewhere or closes no longer shows the notebook it showed. The lab
// iframe loading also reports "loading"; the tab's URL (visible on AI Studio pages only)
// tells the two apart.
ext.tabs.onUpdated.addListener((tabId, change, tab) => {
  if (change.status !== 'loading') return;
  void core.then(async () => {
    const known = await readTabNotebook(tabId);
    const now = tab.url ? await locate(tab.url) : null;
    if (known && now?.baseUrl !== known.baseUrl) await ext.storage.session.remove(tabKey(tabId));
  });
});
ext.tabs.onRemoved.addListener((tabId) => void ext.storage.session.remove(tabKey(tabId)));

// A content script holds a port open while it runs cells. Closed while the project still
// shows "running" means the page went away mid-run: say so, and let the next page run again.
ext.runtime.onConnect.addListener((port) => {
  if (port.name !== CELLS_PORT || port.sender?.id !== ext.runtime.id) return;
  const url = port.sender.url ?? '';
  port.onDisconnect.addListener(() => void core.then(async () => {
    const location = await locate(url);
    if (location && (await readStatus(location.projectId))?.phase === 'running') {
      await recordEvent(location.projectId, { kind: 'failed', reason: 'the notebook page closed or reloaded while the cells ran' });
    }
  }));
});
