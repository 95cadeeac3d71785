// Where the extension keeps things, read the way each side can: from one of its own pages
// (its origin: IndexedDB and storage.local), and from its content script's isolated world
// on a web page, through the DevTools protocol, as a compromised renderer could.
import { openExtensionPage } from './browser.mjs';

/** The extension origin's IndexedDB database and store holding each project's keys (www/src/storage.ts). */
export const KEYS_DATABASE = 'aistudio-ssh';
export const KEYS_STORE = 'projectKeys';

/**
 * Everything the extension stored, as its own pages see it: the keys database (as
 * `{ projectId: record }`), storage.local, and the projects the background lists (the
 * options page's own question).
 */
export async function extensionStorage(browser) {
  const page = await openExtensionPage(browser, 'options.html');
  try {
    return await page.evaluate(async ([database, storeName]) => {
      const request = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
      const keysDatabase = {};
      // Listed first: opening a database that does not exist would create it.
      if ((await indexedDB.databases()).some((d) => d.name === database)) {
        const db = await request(indexedDB.open(database));
        if (db.objectStoreNames.contains(storeName)) {
          const store = db.transaction(storeName).objectStore(storeName);
          const [keys, values] = await Promise.all([request(store.getAllKeys()), request(store.getAll())]);
          keys.forEach((key, index) => { keysDatabase[key] = values[index]; });
        }
        db.close();
      }
      return {
        keysDatabase,
        local: await chrome.storage.local.get(null),
        projects: (await chrome.runtime.sendMessage({ kind: 'listProjects' })).value,
      };
    }, [KEYS_DATABASE, KEYS_STORE]);
  } finally {
    await page.close();
  }
}

/**
 * As an extension before keys moved to IndexedDB kept them: the project's record leaves the
 * keys database for `project:<id>:keys` in storage.local (already there on such a build).
 * Returns the record.
 */
export async function keepKeysTheOldWay(browser, projectId) {
  const page = await openExtensionPage(browser, 'options.html');
  try {
    return await page.evaluate(async ([projectId, database, storeName]) => {
      const legacyKey = `project:${projectId}:keys`;
      const request = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
      const db = (await indexedDB.databases()).some((d) => d.name === database) ? await request(indexedDB.open(database)) : null;
      try {
        const record = db?.objectStoreNames.contains(storeName)
          ? await request(db.transaction(storeName).objectStore(storeName).get(projectId))
          : undefined;
        if (record === undefined) return (await chrome.storage.local.get(legacyKey))[legacyKey];
        await chrome.storage.local.set({ [legacyKey]: record });
        const transaction = db.transaction(storeName, 'readwrite');
        transaction.objectStore(storeName).delete(projectId);
        await new Promise((resolve, reject) => { transaction.oncomplete = resolve; transaction.onerror = () => reject(transaction.error); });
        return record;
      } finally {
        db?.close();
      }
    }, [projectId, KEYS_DATABASE, KEYS_STORE]);
  } finally {
    await page.close();
  }
}

/** What the content script's world may try to read: every storage area, the background's keys, and IndexedDB (the page origin's). */
const READ_EVERYTHING = `(async () => {
  const seen = { runtimeId: chrome.runtime?.id ?? null, location: location.href };
  const attempt = async (name, work) => {
    try { seen[name] = await work(); } catch (error) { seen[name] = 'refused: ' + (error?.message ?? error); }
  };
  await attempt('storage.local', () => chrome.storage.local.get(null));
  await attempt('storage.session', () => chrome.storage.session.get(null));
  // Keys are for extension pages: the background refuses a content script that asks.
  await attempt('projectKeys', () => chrome.runtime.sendMessage({ kind: 'projectKeys', projectId: '7892508' }));
  const request = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });
  await attempt('indexedDB', async () => {
    // Every database this world sees, and the extension's by name.
    const names = new Set((await indexedDB.databases()).map((d) => d.name));
    names.add(${JSON.stringify(KEYS_DATABASE)});
    const dump = {};
    for (const name of names) {
      const db = await request(indexedDB.open(name));
      dump[name] = {};
      for (const store of db.objectStoreNames) {
        dump[name][store] = await request(db.transaction(store).objectStore(store).getAll());
      }
      db.close();
    }
    return dump;
  });
  return JSON.stringify(seen);
})()`;

/**
 * Runs READ_EVERYTHING in each of the extension's content script worlds of `page` (its
 * frames); returns what each could read, parsed.
 */
export async function readFromContentScript(page, extensionId) {
  const session = await page.context().newCDPSession(page);
  try {
    const contexts = [];
    session.on('Runtime.executionContextCreated', ({ context }) => contexts.push(context));
    // Enabling reports every context that already exists.
    await session.send('Runtime.enable');
    const ours = contexts.filter((context) => context.auxData?.type === 'isolated'
      && (context.origin === `chrome-extension://${extensionId}` || context.name === 'AI Studio SSH'));
    if (ours.length === 0) {
      throw new Error(`no content script world on ${page.url()}: ${JSON.stringify(contexts.map((c) => [c.name, c.origin, c.auxData]))}`);
    }
    const results = [];
    for (const context of ours) {
      const { result, exceptionDetails } = await session.send('Runtime.evaluate', {
        contextId: context.id, expression: READ_EVERYTHING, awaitPromise: true, returnByValue: true,
      });
      if (exceptionDetails) throw new Error(`in the content script world: ${JSON.stringify(exceptionDetails)}`);
      results.push(JSON.parse(result.value));
    }
    return results;
  } finally {
    await session.detach();
  }
}
