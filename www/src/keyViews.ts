// The project's keys as extension pages see them (public halves only), and a client key
// replaced by the user's choice.
import { clientKeyComment, importClientKey } from '../../build/wasm/aistudio_ssh.js';
import type { KeyView, ProjectKeys, ProjectKeysView, StoredKey } from '../../build/wasm/aistudio_ssh.js';
import { generateKey } from './keys';
import type { ClientKeySource } from './messages';

function keyView(key: StoredKey | null | undefined): KeyView | null {
  return key ? { ...key.public, hasPrivateKey: Boolean(key.privateKey) } : null;
}

export function projectKeysView(projectId: string, keys: ProjectKeys): ProjectKeysView {
  return {
    projectId,
    client: keyView(keys.client),
    containerRelay: keyView(keys.containerRelay),
    containerHost: keyView(keys.containerHost),
  };
}

/** The client key the user chose: made here, or their own (a public line or a private key). */
export async function clientKeyFrom(projectId: string, source: ClientKeySource): Promise<StoredKey> {
  switch (source.kind) {
    case 'generate':
      return generateKey(source.algorithm, clientKeyComment(projectId));
    case 'pasted':
      return importClientKey(source.text, source.passphrase || undefined) as StoredKey;
  }
}
