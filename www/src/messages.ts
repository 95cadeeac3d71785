// What the extension's contexts exchange beyond the core's own types (generated from Rust
// into build/wasm/aistudio_ssh.d.ts): the content script's orders and what the background
// adds to the core's values. The background's requests are typed by its table (requests.ts).
import type { CellPlan, KeyAlgorithm, NotebookLocation, ProjectInput } from '../../build/wasm/aistudio_ssh';

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
export type ProjectSettings = Required<Pick<ProjectInput, 'remotePort'>> & Pick<ProjectInput, 'sshDir' | 'containerUser'>;

/** The port a content script holds open while it runs cells. */
export const CELLS_PORT = 'cells';

/** The background's orders to the content script of the frame that found the notebook. */
export type ContentOrder = { kind: 'run'; plan: CellPlan };
