// Messages between the extension's contexts, and the one way to send them.
import { ext } from './platform';

/** Mirror of `aistudio_ssh::jupyter::NotebookLocation` (serialised in camelCase). */
export interface NotebookLocation {
  origin: string;
  zone: string;
  userId: string;
  projectId: string;
  baseUrl: string;
  page: 'ideHome' | 'lab' | 'classicNotebook';
}

/** Key types the extension makes (`aistudio_ssh::keys::KeyAlgorithm::name`). */
export type KeyAlgorithmName = 'ed25519' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096';

/** Mirror of `aistudio_ssh::keys::PublicKeyInfo`. */
export interface PublicKeyInfo {
  line: string;
  fingerprint: string;
  algorithm: string;
  bits: number;
  comment: string;
}

/** Mirror of `aistudio_ssh::project_keys::StoredKey`; lives only in the background and storage. */
export interface StoredKey {
  privateKey: string | null;
  public: PublicKeyInfo;
}

/** Mirror of `aistudio_ssh::project_keys::ProjectKeys`. */
export interface ProjectKeys {
  client?: StoredKey | null;
  containerRelay?: StoredKey | null;
  containerHost?: StoredKey | null;
}

/** What extension pages see of a key: never the private half. */
export interface KeyView extends PublicKeyInfo {
  hasPrivateKey: boolean;
}

export interface ProjectKeysView {
  projectId: string;
  client: KeyView | null;
  containerRelay: KeyView | null;
  containerHost: KeyView | null;
}

/** Where a replacement client key comes from: made here, or the user's own. */
export type ClientKeySource =
  | { kind: 'generate'; algorithm: KeyAlgorithmName }
  | { kind: 'pasted'; text: string; passphrase?: string };

/** The user's download: file name and contents. */
export interface KeyFile {
  name: string;
  text: string;
}

/** What the background knows of a tab's notebook. */
export interface TabNotebook extends NotebookLocation {
  /** When the notebook's Jupyter Server started (its `api/status`), once the restore is over. */
  jupyterStarted?: string;
}

export interface CoreInfo {
  coreVersion: string;
}

/** What each request kind answers. */
export interface Replies {
  /** Any context -> background: the wasm core is up and its version. */
  coreInfo: CoreInfo;
  /** Content script -> background: "I run in this frame"; the background reads the URL from the sender. */
  pageOpened: NotebookLocation | null;
  /** Content script -> background: the page's Jupyter Server answers; when it started. */
  jupyterReady: TabNotebook | null;
  /** Popup -> background: the notebook last seen in a tab. */
  tabNotebook: TabNotebook | null;
  /** Options page -> background: the project's keys (made if missing), public halves only. */
  projectKeys: ProjectKeysView;
  /** Options page -> background: projects that have keys. */
  listProjects: string[];
  /** Options page -> background, on the user's click: the client key files to download. */
  exportClientKey: KeyFile[];
  /** Options page -> background, on the user's click: a new client key. */
  replaceClientKey: ProjectKeysView;
}

export type Request =
  | { kind: 'coreInfo' }
  | { kind: 'pageOpened' }
  | { kind: 'jupyterReady'; started: string }
  | { kind: 'tabNotebook'; tabId: number }
  | { kind: 'projectKeys'; projectId: string }
  | { kind: 'listProjects' }
  | { kind: 'exportClientKey'; projectId: string; passphrase?: string }
  | { kind: 'replaceClientKey'; projectId: string; source: ClientKeySource };

/** How a reply crosses `runtime.sendMessage`: errors keep their name for the UI to switch on. */
export type Envelope<T> =
  | { ok: true; value: T }
  | { ok: false; error: { name: string; message: string } };

/** An error raised in the background, re-thrown in the caller with its original name. */
export class BackgroundError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/**
 * Sends a request to the background and unwraps its envelope.
 * @throws BackgroundError when the background handler failed.
 */
export async function send<R extends Request>(request: R): Promise<Replies[R['kind']]> {
  const envelope = (await ext.runtime.sendMessage(request)) as Envelope<Replies[R['kind']]> | undefined;
  if (!envelope) throw new BackgroundError('NoReply', `no reply to ${request.kind}`);
  if (!envelope.ok) throw new BackgroundError(envelope.error.name, envelope.error.message);
  return envelope.value;
}
