// What the extension keeps and where: the keys of storage.local and storage.session, the
// extension's own IndexedDB (keys), and the one lock that orders changes to any of them.
import type { ProjectStatus, RelayInput, SelfHostedJupyter } from '../../build/wasm/aistudio_ssh';
import type { ProjectSettings, TabNotebook } from './messages';
import { ext } from './platform';

// storage.local: settings and status. Readable by content scripts where the browser cannot
// restrict it (see `keepStorageFromContentScripts`), so never keys.

/** The relay every project shares (`RelayInput`). */
export const RELAY_KEY = 'relay';
/** Unset until the first successful connect, which turns it on (the user can turn it off). */
export const AUTO_CONNECT_KEY = 'autoConnect';
/** The user's own Jupyter servers (`SelfHostedJupyter[]`). */
export const SELF_HOSTED_KEY = 'selfHosted';
/** A project's own settings (`ProjectSettings`). */
export const settingsKey = (projectId: string) => `project:${projectId}:settings`;
export const isSettingsKey = (key: string) => key.endsWith(':settings');
/** A project's connection status (`ProjectStatus`); pages follow it through `storage.onChanged`. */
export const statusKey = (projectId: string) => `project:${projectId}:status`;
/** Where earlier versions kept a project's keys (`project:<id>:keys`), moved to IndexedDB since. */
const LEGACY_KEYS_PATTERN = /^project:(.+):keys$/;
/** The project whose keys an earlier version kept under `key`, if it is such a key. */
export const legacyKeysProject = (key: string): string | undefined => LEGACY_KEYS_PATTERN.exec(key)?.[1];

// storage.session: gone with the browser.

/** What the background knows of a tab's notebook (`TabNotebook`). */
export const tabKey = (tabId: number) => `tab:${tabId}:notebook`;
const TAB_KEY_PATTERN = /^tab:(\d+):notebook$/;
/** The tab a `tabKey` names, or NaN for any other key. */
export const tabOfKey = (key: string) => Number(TAB_KEY_PATTERN.exec(key)?.[1]);
/** Connect was clicked before the notebook's Jupyter answered: run once it does (`true`). */
const connectWishKey = (projectId: string) => `project:${projectId}:connectWanted`;

/** What each fixed storage.local key holds. */
interface LocalValues {
  [RELAY_KEY]: RelayInput;
  [AUTO_CONNECT_KEY]: boolean;
  [SELF_HOSTED_KEY]: SelfHostedJupyter[];
}

export async function readLocal<K extends keyof LocalValues>(key: K): Promise<LocalValues[K] | undefined> {
  return (await ext.storage.local.get(key))[key] as LocalValues[K] | undefined;
}

export const writeLocal = <K extends keyof LocalValues>(key: K, value: LocalValues[K]) =>
  ext.storage.local.set({ [key]: value });

export async function readProjectSettings(projectId: string): Promise<ProjectSettings | undefined> {
  const key = settingsKey(projectId);
  return (await ext.storage.local.get(key))[key] as ProjectSettings | undefined;
}

export const writeProjectSettings = (projectId: string, settings: ProjectSettings) =>
  ext.storage.local.set({ [settingsKey(projectId)]: settings });

/** Every project's settings, to find the relay ports already taken. */
export async function allProjectSettings(): Promise<ProjectSettings[]> {
  const all = await ext.storage.local.get(null);
  return Object.entries(all).filter(([key]) => isSettingsKey(key)).map(([, value]) => value as ProjectSettings);
}

export async function readStatus(projectId: string): Promise<ProjectStatus | undefined> {
  const key = statusKey(projectId);
  return (await ext.storage.local.get(key))[key] as ProjectStatus | undefined;
}

export const writeStatus = (projectId: string, status: ProjectStatus) =>
  ext.storage.local.set({ [statusKey(projectId)]: status });

export async function readTabNotebook(tabId: number): Promise<TabNotebook | undefined> {
  const key = tabKey(tabId);
  return (await ext.storage.session.get(key))[key] as TabNotebook | undefined;
}

export const writeTabNotebook = (tabId: number, notebook: TabNotebook) =>
  ext.storage.session.set({ [tabKey(tabId)]: notebook });

export const forgetTabNotebook = (tabId: number) => ext.storage.session.remove(tabKey(tabId));

/** Every tab with what is known of its notebook. */
export async function allTabNotebooks(): Promise<[number, TabNotebook][]> {
  const all = await ext.storage.session.get(null);
  return Object.entries(all)
    .map(([key, value]) => [tabOfKey(key), value as TabNotebook] as [number, TabNotebook])
    .filter(([tabId]) => !Number.isNaN(tabId));
}

export const wishToConnect = (projectId: string) => ext.storage.session.set({ [connectWishKey(projectId)]: true });

/** Whether Connect was clicked while the notebook restored; the wish is used up. */
export async function takeConnectWish(projectId: string): Promise<boolean> {
  const key = connectWishKey(projectId);
  const wanted = Boolean((await ext.storage.session.get(key))[key]);
  if (wanted) await ext.storage.session.remove(key);
  return wanted;
}

// The lock.

const locks = new Map<string, Promise<unknown>>();

/**
 * One change at a time per name (`keys:<project>` for its keys, `status:<project>` for its status,
 * `settings` for relay ports...), so two tabs of one project never make two key sets or take
 * one port twice. A failed change does not block the next.
 */
export function serialized<T>(name: string, work: () => Promise<T>): Promise<T> {
  const previous = locks.get(name) ?? Promise.resolve();
  const next = previous.then(work, work);
  locks.set(name, next.catch(() => undefined));
  return next;
}

// IndexedDB: each project's `ProjectKeys`, keyed by project id. Content scripts reach their
// page's IndexedDB, never this one; storage.local, by contrast, is theirs too.

const DATABASE_NAME = 'aistudio-ssh';
/** Raise with a new `onupgradeneeded` step when a store is added. */
const DATABASE_VERSION = 1;
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
