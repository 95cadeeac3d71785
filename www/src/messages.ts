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

export interface CoreInfo {
  coreVersion: string;
}

/** What each request kind answers. */
export interface Replies {
  /** Any context -> background: the wasm core is up and its version. */
  coreInfo: CoreInfo;
  /** Content script -> background: "I run in this frame"; the background reads the URL from the sender. */
  pageOpened: NotebookLocation | null;
  /** Popup -> background: the notebook last seen in a tab. */
  tabNotebook: NotebookLocation | null;
}

export type Request =
  | { kind: 'coreInfo' }
  | { kind: 'pageOpened' }
  | { kind: 'tabNotebook'; tabId: number };

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
