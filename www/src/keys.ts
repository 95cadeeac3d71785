// Key making in the background: WebCrypto for RSA (native speed), the Rust core for
// Ed25519 and as the RSA fallback; and the per-project store in storage.local.
import {
  completeProjectKeys, generateKeyPair, keyPairFromRsaJwk, rsaBits,
} from '../../build/wasm/aistudio_ssh.js';
import type { KeyAlgorithmName, ProjectKeys, StoredKey } from './messages';
import { ext } from './platform';

/**
 * A new key. RSA goes through `SubtleCrypto.generateKey` (extractable), whose JWK the
 * core checks and turns into an OpenSSH key; without WebCrypto the core makes it in wasm.
 */
export async function generateKey(algorithm: KeyAlgorithmName, comment: string): Promise<StoredKey> {
  const bits = rsaBits(algorithm);
  if (bits !== undefined && globalThis.crypto?.subtle) {
    const pair = (await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair;
    return keyPairFromRsaJwk(await crypto.subtle.exportKey('jwk', pair.privateKey), comment) as StoredKey;
  }
  return generateKeyPair(algorithm, comment) as StoredKey;
}

const projectKey = (projectId: string) => `project:${projectId}:keys`;
const PROJECT_KEY_PATTERN = /^project:(.+):keys$/;

/** One change at a time per name (a project id for keys), so two tabs of one project never make two key sets. */
const locks = new Map<string, Promise<unknown>>();
export function serialized<T>(name: string, work: () => Promise<T>): Promise<T> {
  const previous = locks.get(name) ?? Promise.resolve();
  const next = previous.then(work, work);
  locks.set(name, next.catch(() => undefined));
  return next;
}

async function readKeys(projectId: string): Promise<ProjectKeys | undefined> {
  const key = projectKey(projectId);
  return (await ext.storage.local.get(key))[key] as ProjectKeys | undefined;
}

/** The project's keys, making (and storing) only those it does not have yet. */
export function ensureProjectKeys(projectId: string): Promise<ProjectKeys> {
  return serialized(projectId, async () => {
    const { keys, made } = completeProjectKeys(projectId, (await readKeys(projectId)) ?? null) as {
      keys: ProjectKeys;
      made: string[];
    };
    if (made.length > 0) await ext.storage.local.set({ [projectKey(projectId)]: keys });
    return keys;
  });
}

/** Replaces the project's client key by the user's explicit choice. */
export function replaceClientKey(projectId: string, client: StoredKey): Promise<ProjectKeys> {
  return serialized(projectId, async () => {
    const keys = { ...((await readKeys(projectId)) ?? {}), client };
    await ext.storage.local.set({ [projectKey(projectId)]: keys });
    return keys;
  });
}

/** The stored keys of a project, without making any. */
export const storedProjectKeys = (projectId: string) => readKeys(projectId);

/** Every project that has keys, by id. */
export async function projectsWithKeys(): Promise<string[]> {
  const all = await ext.storage.local.get(null);
  return Object.keys(all)
    .map((key) => PROJECT_KEY_PATTERN.exec(key)?.[1])
    .filter((id): id is string => id !== undefined)
    .sort();
}
