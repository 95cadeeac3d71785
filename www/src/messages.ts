// What the extension's contexts exchange beyond the core's own types (generated from Rust
// into build/wasm/aistudio_ssh.d.ts): the content script's orders and what the background
// adds to the core's values. The background's requests are typed by its table (requests.ts).
import type {
  Attachment, CellPlan, KeyAlgorithm, NotebookLocation, ProjectInput, ToExtension,
} from '../../build/wasm/aistudio_ssh';

/** Where a replacement client key comes from: made here, or the user's own. */
export type ClientKeySource =
  | { kind: 'generate'; algorithm: KeyAlgorithm }
  | { kind: 'pasted'; text: string; passphrase?: string };

/** What the background knows of a tab's notebook. */
export interface TabNotebook extends NotebookLocation {
  /** When the notebook's Jupyter Server started (its `api/status`), once the restore is over. */
  jupyterStarted?: string;
  /** The frame whose content script talks to this notebook's Jupyter Server. */
  frameId?: number;
}

/** Per-project settings as the extension stores them (the fields of `ProjectInput` it writes). */
export type ProjectSettings = Required<Pick<ProjectInput, 'remotePort'>> & Pick<ProjectInput, 'sshDir' | 'containerUser' | 'route'>;

/** The port a content script holds open while it runs cells. */
export const CELLS_PORT = 'cells';

/** The background's orders to the content script of the frame that found the notebook. */
export type ContentOrder = { kind: 'run'; plan: CellPlan };

/** The native messaging host of the helper (`aistudio-ssh install` registers it). */
export const HELPER_HOST_NAME = 'io.github.aistudio_ssh';

/** The port the background opens into a notebook tab's frame to carry a direct link. */
export const CARRIER_PORT = 'carrier';

/**
 * The frame of ours (web-accessible) that hands a carrier's MessagePort to the worker: see
 * `broker.ts`.
 */
export const BROKER_PAGE = 'broker.html';

/**
 * The background's orders to a carrier: on its runtime port, or, once the carrier's
 * MessagePort reached the worker, on that (where bytes cross as they are, not as base64).
 */
export type CarrierOrder =
  /**
   * Hand a MessagePort to the worker through our frame, `broker.html`, with this `nonce`
   * (Chromium; the worker attaches without it if it does not come).
   */
  | { kind: 'offerPort'; nonce: string }
  /**
   * Attach: run `code` in the carrier's kernel (started if need be), then open the comm;
   * `staleKernel` is an earlier carrier's kernel (a page since reloaded) to shut down.
   * The carrier reports on the way this order came.
   */
  | { kind: 'attach'; code: string; attachment: Attachment; staleKernel: string | null }
  /** Bytes for the bridge (base64 on the runtime port): sent after the attachment's data head. */
  | { kind: 'bytes'; data: string | Uint8Array }
  /** End the current attachment (the next `attach` follows). */
  | { kind: 'detach' };

/** What the content script reports to the background on a carrier's way. */
export type CarrierReport =
  | { kind: 'attached'; kernelId: string }
  /** A frame from the kernel: a text frame, or a binary one (base64 on the runtime port). */
  | { kind: 'frame'; text: string | undefined; binary: string | Uint8Array | undefined }
  /** The WebSocket closed under the attachment. */
  | { kind: 'detached'; reason: string }
  /** No carrier can run in this frame (no kernel, the attach code failed). */
  | { kind: 'failed'; reason: string };

/** A project's link as the helper counts it. */
export type LinkStats = Extract<ToExtension, { kind: 'status' }>;

/** Whether the helper answers. */
export type HelperStatus =
  | { state: 'unknown' | 'starting' }
  | { state: 'running'; version: string }
  | { state: 'missing' | 'exited'; error: string };
