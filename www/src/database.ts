// The extension origin's IndexedDB as promises, for keys.ts only. Content scripts reach
// their page's IndexedDB, never this one; storage.local, by contrast, is theirs too.

const DATABASE_NAME = 'aistudio-ssh';
/** Raise with a new `onupgradeneeded` step when a store is added. */
const DATABASE_VERSION = 1;
/** Each project's `ProjectKeys`, keyed by project id. */
const PROJECT_KEYS_STORE = 'projectKeys';

let opened: Promise<IDBDatabase> | undefined;

function open(): Promise<IDBDatabase> {
  opened ??= new Promise<IDBDatabase>((resolve, reject) => {
    const request = indexedDB.open(DATABASE_NAME, DATABASE_VERSION);
    request.onupgradeneeded = () => request.result.createObjectStore(PROJECT_KEYS_STORE);
    request.onsuccess = () => {
      const database = request.result;
      // A newer version of the extension opening it (an update): let it, and reopen next time.
      database.onversionchange = () => { database.close(); opened = undefined; };
      resolve(database);
    };
    request.onerror = () => reject(request.error);
  }).catch((error: unknown) => {
    // A failed open is tried again by the next caller rather than remembered.
    opened = undefined;
    throw error;
  });
  return opened;
}

/**
 * One request in its own transaction; resolves once the transaction committed, so a write
 * is on disk before anyone is told it happened ('strict': private keys must survive a crash).
 */
async function inStore<T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const database = await open();
  return new Promise<T>((resolve, reject) => {
    const transaction = database.transaction(PROJECT_KEYS_STORE, mode, { durability: 'strict' });
    const request = work(transaction.objectStore(PROJECT_KEYS_STORE));
    transaction.oncomplete = () => resolve(request.result);
    transaction.onerror = () => reject(transaction.error ?? request.error);
    transaction.onabort = () => reject(transaction.error ?? new DOMException('transaction aborted', 'AbortError'));
  });
}

export const readRecord = <T>(key: string) => inStore<T | undefined>('readonly', (store) => store.get(key));

export const writeRecord = (key: string, value: unknown) =>
  inStore('readwrite', (store) => store.put(value, key)).then(() => undefined);

export const recordKeys = () => inStore('readonly', (store) => store.getAllKeys()) as Promise<string[]>;
