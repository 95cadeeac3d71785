// What the extension's contexts exchange beyond the core's own types (generated from Rust
// into build/wasm/aistudio_ssh.d.ts): views that hide private keys, and the content
// script's orders. The background's requests are typed by its table (requests.ts).
import type {
  KeyAlgorithm, NotebookLocation, ProjectKeys, ProjectStatus, PublicKeyInfo, RenderedProject, SettingsInput,
} from '../../build/wasm/aistudio_ssh';

// For keys.ts, which imported these from here when they were written by hand.
export type { KeyAlgorithm as KeyAlgorithmName, ProjectKeys, StoredKey } from '../../build/wasm/aistudio_ssh';

/** What extension pages see of a key: never the private half. */
export interface KeyView extends PublicKeyInfo {
  hasPrivateKey: boolean;
}

/** What extension pages see of a project's keys. */
export type ProjectKeysView = { projectId: string } & { [Role in keyof ProjectKeys]-?: KeyView | null };

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

/** Per-project settings (the project's part of `SettingsInput`); the relay is shared. */
export type ProjectSettings = Required<Pick<SettingsInput, 'remotePort'>> & Pick<SettingsInput, 'sshDir' | 'containerUser'>;

/** What the content script runs on its own kernel: the cells, and the notebook to save first. */
export interface CellPlan extends Partial<Pick<RenderedProject, 'notebookPath' | 'notebook' | 'notebookDigest'>> {
  action: 'connect' | 'disconnect' | 'probe';
  cells: RenderedProject['cells'];
}

/** The port a content script holds open while it runs cells. */
export const CELLS_PORT = 'cells';

/** The background's orders to the content script of the frame that found the notebook. */
export type ContentOrder = { kind: 'run'; plan: CellPlan };

/** What the popup shows for a project. */
export interface ProjectView {
  projectId: string;
  hasRelay: boolean;
  status: ProjectStatus | null;
  hostAlias: string;
  command: string;
  /** The companion notebook, relative to the Jupyter root. */
  notebookPath: string;
}
