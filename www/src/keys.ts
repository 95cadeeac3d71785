// Key making in the background through the Rust core (Ed25519 from the browser's RNG, RSA
// from WebCrypto, both called from Rust); and the per-project store in the extension's
// IndexedDB (storage.local, where keys were kept before, is readable by content scripts).
import {
  clientKeyComment, completeProjectKeys, importClientKey, makeKeyPair,
} from '../../build/wasm/aistudio_ssh.js';
import type { KeyAlgorithm, ProjectKeys, StoredKey } from '../../build/wasm/aistudio_ssh.js';
import type { ClientKeySource } from './messages';
import { ext } from './platform';
import { legacyKeysProject, readRecord, recordKeys, serialized, writeRecord } from './storage';

/** A new key, made by the core. */
export const generateKey = (algorithm: KeyAlgorithm, comment: string): Promise<StoredKey> =>
  makeKeyPair(algorithm, comment);

/** The client key the user chose: made here, or their own (a public line or a private key). */
export async function clientKeyFrom(projectId: string, source: ClientKeySource): Promise<StoredKey> {
  switch (source.kind) {
    case 'generate':
      return generateKey(source.algorithm, clientKeyComment(projectId));
    case 'pasted':
      return importClientKey(source.text, source.passphrase || undefined);
  }
}

/** One change of a project's keys at a time, so two tabs of one project never make two key sets. */
const keysLock = (projectId: string) => `keys:${projectId}`;

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
    const projectId = legacyKeysProject(key);
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
  return serialized(keysLock(projectId), async () => {
    const { keys, made } = completeProjectKeys(projectId, (await readKeys(projectId)) ?? null);
    if (made.length > 0) await writeRecord(projectId, keys);
    return keys;
  });
}

/** Replaces the project's client key by the user's explicit choice. */
export function replaceClientKey(projectId: string, client: StoredKey): Promise<ProjectKeys> {
  return serialized(keysLock(projectId), async () => {
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
