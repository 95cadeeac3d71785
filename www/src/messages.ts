// What the extension's contexts exchange beyond the core's own types (generated from Rust
// into build/wasm/aistudio_ssh.d.ts): the content script's orders and what the background
// adds to the core's values. The background's requests are typed by its table (requests.ts).
import type {
  CellAction, KeyAlgorithm, NotebookLocation, ProjectInput, ProjectView as CoreProjectView, ProjectBundle,
} from '../../build/wasm/aistudio_ssh';

// For keys.ts, which imported these from here when they were written by hand.
export type { KeyAlgorithm as KeyAlgorithmName, ProjectKeys, StoredKey } from '../../build/wasm/aistudio_ssh';

/** Where a replacement client key comes from: made here, or the user's own. */
export type ClientKeySource =
  | { kind: 'generate'; algorithm: KeyAlgorithm }
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
  /** The frame whose content script talks to this notebook's Jupyter Server. */
  frameId?: number;
}

/** Per-project settings as the extension stores them (the fields of `ProjectInput` it writes). */
export type ProjectSettings = Required<Pick<ProjectInput, 'remotePort'>> & Pick<ProjectInput, 'sshDir' | 'containerUser'>;

/** What the content script runs on its own kernel: the cells, and the notebook to save first. */
export interface CellPlan extends Partial<Pick<ProjectBundle, 'notebookPath' | 'notebook' | 'notebookDigest'>> {
  action: CellAction;
  cells: ProjectBundle['cells'];
}

/** The port a content script holds open while it runs cells. */
export const CELLS_PORT = 'cells';

/** The background's orders to the content script of the frame that found the notebook. */
export type ContentOrder = { kind: 'run'; plan: CellPlan };

/** What the popup shows for a project (the background builds it; the popup decides the download offer). */
export type ProjectView = Omit<CoreProjectView, 'offerNotebookDownload'>;
