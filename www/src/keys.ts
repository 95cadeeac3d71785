// Key making in the background through the Rust core (Ed25519 from the browser's RNG, RSA
// from WebCrypto, both called from Rust); and the per-project store in the extension's
// IndexedDB (storage.local, where keys were kept before, is readable by content scripts).
import { completeProjectKeys, makeKeyPair } from '../../build/wasm/aistudio_ssh.js';
import { readRecord, recordKeys, writeRecord } from './database';
import type { KeyAlgorithmName, ProjectKeys, StoredKey } from './messages';
import { ext } from './platform';

/** A new key, made by the core. */
export async function generateKey(algorithm: KeyAlgorithmName, comment: string): Promise<StoredKey> {
  return (await makeKeyPair(algorithm, comment)) as StoredKey;
}

/** Where earlier versions kept a project's keys in storage.local: `project:<id>:keys`. */
const LEGACY_KEY_PATTERN = /^project:(.+):keys$/;

/** One change at a time per name (a project id for keys), so two tabs of one project never make two key sets. */
const locks = new Map<string, Promise<unknown>>();
export function serialized<T>(name: string, work: () => Promise<T>): Promise<T> {
  const previous = locks.get(name) ?? Promise.resolve();
  const next = previous.then(work, work);
  locks.set(name, next.catch(() => undefined));
  return next;
}

/** Structured clone keeps property order, so equal records serialise alike. */
const sameRecord = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Moves keys an earlier version left in storage.local into IndexedDB. A record leaves
 * storage.local only once IndexedDB holds an equal one, read back after the write; when
 * IndexedDB already holds a different one (a downgrade wrote the old place since), that one
 * is the keys in use and the old record stays where it is rather than being lost.
 */
async function migrateLegacyKeys(): Promise<void> {
  const all = await ext.storage.local.get(null);
  for (const [key, legacy] of Object.entries(all)) {
    const projectId = LEGACY_KEY_PATTERN.exec(key)?.[1];
    if (projectId === undefined) continue;
    const current = await readRecord<ProjectKeys>(projectId);
    if (current === undefined) await writeRecord(projectId, legacy);
    if (sameRecord(await readRecord<ProjectKeys>(projectId), legacy)) {
      await ext.storage.local.remove(key);
    } else {
      console.warn(`AI Studio SSH: ${key} in storage.local differs from the keys in use; left in place`);
    }
  }
}

let migration: Promise<void> | undefined;

/** The migration, once per background life (started at its start, awaited before any key is read). */
export function migrateKeys(): Promise<void> {
  // A failed one (storage unavailable for a moment) is tried again by the next caller.
  migration ??= migrateLegacyKeys().catch((error: unknown) => {
    migration = undefined;
    throw error;
  });
  return migration;
}

async function readKeys(projectId: string): Promise<ProjectKeys | undefined> {
  await migrateKeys();
  return readRecord<ProjectKeys>(projectId);
}

/** The project's keys, making (and storing) only those it does not have yet. */
export function ensureProjectKeys(projectId: string): Promise<ProjectKeys> {
  return serialized(projectId, async () => {
    const { keys, made } = completeProjectKeys(projectId, (await readKeys(projectId)) ?? null) as {
      keys: ProjectKeys;
      made: string[];
    };
    if (made.length > 0) await writeRecord(projectId, keys);
    return keys;
  });
}

/** Replaces the project's client key by the user's explicit choice. */
export function replaceClientKey(projectId: string, client: StoredKey): Promise<ProjectKeys> {
  return serialized(projectId, async () => {
    const keys = { ...((await readKeys(projectId)) ?? {}), client };
    await writeRecord(projectId, keys);
    return keys;
  });
}

/** The stored keys of a project, without making any. */
export const storedProjectKeys = (projectId: string) => readKeys(projectId);

/** Every project that has keys, by id. */
export async function projectsWithKeys(): Promise<string[]> {
  await migrateKeys();
  return (await recordKeys()).sort();
}
