// Background service worker (Chromium) / event page (Firefox): hosts the wasm core and
// registers the listeners; what each does lives in the modules it delegates to (the requests
// in requests.ts). Kept minimal: this file cannot be unit-tested.
import init from '../../build/wasm/aistudio_ssh.js';
import { TAKES_CARRIER_PORTS, acceptCarrierPort, connectHelper, directLinks } from './direct';
import { generateKey, migrateKeys } from './keys';
import { ext, keepStorageFromContentScripts } from './platform';
import { answer, enveloped, senderContext } from './requestTable';
import { REQUESTS } from './requests';
import { syncContentScripts } from './selfHosted';
import { tabClosed, tabLoading, watchCellsPort } from './tabs';

// Instantiated once per worker life. Listeners must be registered synchronously at the top
// level (a worker woken by an event runs this file again), so handlers await it instead.
const core = init();

// For the DevTools console, `npm run bench` and the tests: the same key making the extension
// uses, and direct mode's links with the ways they take.
Object.assign(globalThis, { aistudioSsh: { core, generateKey, directLinks } });

// At every start: settings and status out of content scripts' reach where the browser allows
// it, and keys an earlier version kept in storage.local moved into IndexedDB.
void keepStorageFromContentScripts();
void migrateKeys().catch((error: unknown) => console.warn('AI Studio SSH: keys not moved yet:', error));

ext.runtime.onMessage.addListener((request: unknown, sender, sendResponse) => {
  // Only our own pages and content scripts; web pages cannot reach this listener
  // (no externally_connectable), and this check keeps it so.
  const context = senderContext(sender, ext.runtime.id, ext.runtime.getURL(''));
  if (!context) return false;
  void enveloped(answer(REQUESTS, request, sender, context, core)).then(sendResponse);
  return true; // the reply is sent asynchronously
});

// The content script for self-hosted servers follows the origins the user grants or revokes
// (also on chrome://extensions); registrations persist, this keeps them true at every start.
void core.then(syncContentScripts);
ext.permissions.onAdded.addListener(() => void core.then(syncContentScripts));
ext.permissions.onRemoved.addListener(() => void core.then(syncContentScripts));

ext.tabs.onUpdated.addListener((tabId, change, tab) => {
  if (change.status === 'loading') void core.then(() => tabLoading(tabId, tab.url));
});
ext.tabs.onRemoved.addListener((tabId) => void tabClosed(tabId));
ext.runtime.onConnect.addListener((port) => watchCellsPort(port, core));

// Direct mode, Chromium: a carrier's MessagePort, which our frame in its notebook tab hands
// over. Only pages of the extension's origin can post to the worker, but that frame relays
// whatever its page posts: a port is taken only with a nonce the worker gave out.
if (TAKES_CARRIER_PORTS) {
  self.addEventListener('message', (event: MessageEvent) => acceptCarrierPort(event));
}

// Direct mode: the helper runs while the browser does (its port also keeps this worker
// alive); `ssh` reaches it through its local socket. Not installed: the popup says how.
void core.then(connectHelper);
