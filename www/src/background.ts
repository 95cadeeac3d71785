// Background service worker (Chromium) / event page (Firefox): hosts the wasm core and
// answers the other contexts. Kept minimal: it wires events to core calls.
import init, {
  clientKeyComment, coreVersion, encryptPrivateKey, importClientKey, isProjectId, locateNotebook,
} from '../../build/wasm/aistudio_ssh.js';
import {
  ensureProjectKeys, generateKey, projectsWithKeys, replaceClientKey, storedProjectKeys,
} from './keys';
import type {
  ClientKeySource, Envelope, KeyView, NotebookLocation, ProjectKeys, ProjectKeysView, Replies, Request,
  StoredKey, TabNotebook,
} from './messages';
import { ext } from './platform';

// Instantiated once per worker life. Listeners must be registered synchronously at the top
// level (a worker woken by an event runs this file again), so handlers await it instead.
const core = init();

// For the DevTools console and `npm run bench`: the same key making the extension uses.
Object.assign(globalThis, { aistudioSsh: { core, generateKey } });

const tabKey = (tabId: number) => `tab:${tabId}:notebook`;

/** What is known of the notebook a tab shows (storage.session: gone when the browser closes). */
async function readTabNotebook(tabId: number): Promise<TabNotebook | undefined> {
  const key = tabKey(tabId);
  return (await ext.storage.session.get(key))[key] as TabNotebook | undefined;
}

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

async function handle(request: Request, sender: chrome.runtime.MessageSender): Promise<Replies[Request['kind']]> {
  await core;
  switch (request.kind) {
    case 'coreInfo':
      return { coreVersion: coreVersion() };
    case 'pageOpened': {
      // The browser sets sender.url to the frame's URL; nothing the page says is used.
      const location = locateNotebook(sender.url ?? '') as NotebookLocation | null;
      if (location && sender.tab?.id !== undefined) {
        // The IDE page and its lab iframe both report; keep what is known of the same notebook.
        const known = await readTabNotebook(sender.tab.id);
        if (known?.baseUrl !== location.baseUrl) await ext.storage.session.set({ [tabKey(sender.tab.id)]: location });
        await ensureProjectKeys(location.projectId);
      }
      return location;
    }
    case 'jupyterReady': {
      // Recorded only for a tab whose frame was recognised as a notebook.
      const location = locateNotebook(sender.url ?? '') as NotebookLocation | null;
      if (!location || sender.tab?.id === undefined) return null;
      const notebook: TabNotebook = { ...location, jupyterStarted: String(request.started) };
      await ext.storage.session.set({ [tabKey(sender.tab.id)]: notebook });
      return notebook;
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
const CONTENT_SCRIPT_REQUESTS: ReadonlySet<Request['kind']> = new Set(['coreInfo', 'pageOpened', 'jupyterReady']);
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

// A tab that navigates elsewhere or closes no longer shows the notebook it showed. The lab
// iframe loading also reports "loading"; the tab's URL (visible on AI Studio pages only)
// tells the two apart.
ext.tabs.onUpdated.addListener((tabId, change, tab) => {
  if (change.status !== 'loading') return;
  void core.then(async () => {
    const known = await readTabNotebook(tabId);
    const now = tab.url ? (locateNotebook(tab.url) as NotebookLocation | null) : null;
    if (known && now?.baseUrl !== known.baseUrl) await ext.storage.session.remove(tabKey(tabId));
  });
});
ext.tabs.onRemoved.addListener((tabId) => void ext.storage.session.remove(tabKey(tabId)));
