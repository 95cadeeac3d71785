// Background service worker (Chromium) / event page (Firefox): hosts the wasm core and
// answers the other contexts. Kept minimal: it wires events to core calls.
import init, { coreVersion, locateNotebook } from '../../build/wasm/aistudio_ssh.js';
import type { Envelope, NotebookLocation, Replies, Request } from './messages';
import { ext } from './platform';

// Instantiated once per worker life. Listeners must be registered synchronously at the top
// level (a worker woken by an event runs this file again), so handlers await it instead.
const core = init();

const tabKey = (tabId: number) => `tab:${tabId}:notebook`;

async function handle(request: Request, sender: chrome.runtime.MessageSender): Promise<Replies[Request['kind']]> {
  await core;
  switch (request.kind) {
    case 'coreInfo':
      return { coreVersion: coreVersion() };
    case 'pageOpened': {
      // The browser sets sender.url to the frame's URL; nothing the page says is used.
      const location = locateNotebook(sender.url ?? '') as NotebookLocation | null;
      if (location && sender.tab?.id !== undefined) {
        await ext.storage.session.set({ [tabKey(sender.tab.id)]: location });
      }
      return location;
    }
    case 'tabNotebook': {
      const key = tabKey(request.tabId);
      return ((await ext.storage.session.get(key))[key] as NotebookLocation | undefined) ?? null;
    }
    default: {
      const error = new Error(`unknown request ${JSON.stringify((request as { kind?: unknown }).kind)}`);
      error.name = 'UnknownRequest';
      throw error;
    }
  }
}

ext.runtime.onMessage.addListener((request: Request, sender, sendResponse) => {
  // Only our own pages and content scripts; web pages cannot reach this listener
  // (no externally_connectable), and this check keeps it so.
  if (sender.id !== ext.runtime.id) return false;
  handle(request, sender).then(
    (value) => sendResponse({ ok: true, value } satisfies Envelope<unknown>),
    (error: unknown) => {
      const { name, message } = error instanceof Error ? error : new Error(String(error));
      sendResponse({ ok: false, error: { name, message } } satisfies Envelope<unknown>);
    },
  );
  return true; // the reply is sent asynchronously
});

// A tab that navigates or closes no longer shows the notebook it showed.
ext.tabs.onUpdated.addListener((tabId, change) => {
  if (change.status === 'loading') void ext.storage.session.remove(tabKey(tabId));
});
ext.tabs.onRemoved.addListener((tabId) => void ext.storage.session.remove(tabKey(tabId)));
