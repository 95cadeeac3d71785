// Messages between the extension's contexts, and the one way to send them.
import { ext } from './platform';

/** Mirror of `aistudio_ssh::jupyter::NotebookLocation` (serialised in camelCase). */
export interface NotebookLocation {
  origin: string;
  zone: string;
  userId: string;
  projectId: string;
  baseUrl: string;
  page: 'ideHome' | 'lab' | 'classicNotebook' | 'tree';
}

/** Mirror of `aistudio_ssh::jupyter::SelfHostedInput`: a Jupyter server of the user's own, as typed. */
export interface SelfHostedInput {
  url: string;
  name: string;
  user: string;
}

/** Mirror of `aistudio_ssh::jupyter::SelfHostedJupyter`. */
export interface SelfHostedServer {
  baseUrl: string;
  name: string;
  user: string;
  originPattern: string;
}

/** What the core says of a typed self-hosted server (`checkSelfHosted`). */
export type SelfHostedCheck = { server: SelfHostedServer } | { errors: FieldError[] };

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
  /** The frame whose content script talks to this notebook's Jupyter Server. */
  frameId?: number;
}

/** Mirror of `aistudio_ssh::settings::RelayInput`: one relay for every project. */
export interface RelayInput {
  host: string;
  port: number;
  user: string;
  hostKey: string;
}

/** Per-project settings; the relay is shared. */
export interface ProjectSettings {
  remotePort: number;
  sshDir?: string;
  /** The Unix user in the container (AI Studio's `aistudio` when unset). */
  containerUser?: string;
}

/** One invalid settings field (`checkSettings`). */
export interface FieldError {
  field: string;
  value: string;
  /** What the field accepts, in English. */
  allowed: string;
  /** The rule's id: `rule_<id>` in _locales translates `allowed` (English needs no entry). */
  rule: string;
}

/** What an answer was, for the core to read (`aistudio_ssh::gateway::AnswerSeen`). */
export interface AnswerSeen {
  status: number;
  contentType: string;
  bodyHead: string;
  redirectedTo: string | null;
  baseUrl: string;
}

/** What the core made of an answer (`classifyAnswer`): `aistudio_ssh::gateway::Answer`, and when to ask again. */
export interface GatewayVerdict {
  answer: 'json' | 'restoring' | 'starting' | 'loggedOut' | 'xsrfRefused' | 'failed';
  retryAfterMs: number | null;
}

/** Mirror of `aistudio_ssh::cells::CellRole`. */
export type Step = 'provision' | 'tunnel' | 'probe';

/** Mirror of `aistudio_ssh::connection::ProjectStatus`. */
export interface ProjectStatus {
  phase: 'notSetUp' | 'ready' | 'restoring' | 'starting' | 'loggedOut' | 'running' | 'up' | 'down' | 'error' | 'disconnected';
  step: Step | null;
  reason: string | null;
  environment: { kind: string; device: string | null; hostname: string } | null;
  jupyterStarted: string | null;
  zone: string | null;
  change: 'restarted' | 'switched' | null;
  notebook: string | null;
}

/** Mirror of `aistudio_ssh::connection::ConnectionEvent`. */
export type ConnectionEvent =
  | { kind: 'noSettings' }
  | { kind: 'restoring' }
  | { kind: 'starting' }
  | { kind: 'loggedOut' }
  | { kind: 'jupyterReady'; started: string; zone: string }
  | { kind: 'stepStarted'; step: Step }
  | { kind: 'stepFailed'; step: Step; output: string }
  | { kind: 'probed'; output: string }
  | { kind: 'notebookSaved'; ok: boolean; status: number }
  | { kind: 'disconnected' }
  | { kind: 'failed'; reason: string };

/** What the content script runs on its own kernel: the cells, and the notebook to save first. */
export interface CellPlan {
  action: 'connect' | 'disconnect' | 'probe';
  cells: { step: Step; source: string }[];
  notebookPath?: string;
  notebook?: unknown;
  /** The notebook's `metadata.aistudio_ssh.digest`: an equal one in the container means no rewrite. */
  notebookDigest?: string;
}

/** Where the background keeps what it knows of a tab's notebook (storage.session: gone with the browser). */
export const tabKey = (tabId: number) => `tab:${tabId}:notebook`;

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

export interface CoreInfo {
  coreVersion: string;
}

/** What each request kind answers. */
export interface Replies {
  /** Any context -> background: the wasm core is up and its version. */
  coreInfo: CoreInfo;
  /** Content script -> background: "I run in this frame"; the background reads the URL from the sender. */
  pageOpened: NotebookLocation | null;
  /** Content script -> background: the page's Jupyter Server answers; what to run, if anything. */
  jupyterReady: { notebook: TabNotebook; plan: CellPlan | null } | null;
  /** Content script -> background: an execute_request frame for its kernel (the core builds it). */
  executeRequest: { requestId: string; frame: string };
  /** Content script -> background: the frames that run a cell in a terminal (the core builds them). */
  terminalInput: { nonce: string; lines: { frame: string; waitFor: string }[] };
  /** Content script -> background, after a cut WebSocket was reopened: the first line to send again. */
  terminalResumeAt: number;
  /** Content script -> background: the cell's result once the terminal output holds its end. */
  terminalOutput: { exitCode: number; output: string } | null;
  /** Content script -> background: what a kernel frame means for its request (the core reads it). */
  kernelMessage: unknown;
  /** Content script -> background: what an answer of the platform means (the core reads it). */
  classifyAnswer: GatewayVerdict;
  /** Content script -> background: what happened while it waited or ran cells. */
  connectionEvent: ProjectStatus | null;
  /** Options page -> background: the relay settings, if any, and auto-connect. */
  relaySettings: { relay: RelayInput | null; autoConnect: boolean };
  /** Options page -> background: saves the relay when valid; the invalid fields otherwise. */
  saveRelay: FieldError[];
  /** Options page -> background: auto-connect on or off. */
  setAutoConnect: boolean;
  /** Options page -> background: what the core says of a typed self-hosted server. */
  checkSelfHosted: SelfHostedCheck;
  /** Options page -> background, once the browser granted the origin: adds the server. */
  addSelfHosted: FieldError[];
  /** Options page -> background: the self-hosted servers and whether their origin is granted. */
  selfHostedServers: (SelfHostedServer & { granted: boolean; hostAlias: string })[];
  /** Options page -> background: forgets a server and gives its origin back. */
  removeSelfHosted: null;
  /** Options page -> background: a project's own settings. */
  projectSettings: ProjectSettings;
  /** Options page -> background: saves a project's settings when valid; the invalid fields otherwise. */
  saveProjectSettings: FieldError[];
  /** Options page / popup -> background: the relay setup script for a project. */
  relayScript: string;
  /** Popup -> background: a project's state and its ssh command. */
  projectView: ProjectView;
  /** Popup -> background: run the cells in the tab's notebook now. */
  connect: ProjectStatus | null;
  /** Popup -> background: stop the tab's tunnel. */
  disconnect: ProjectStatus | null;
  /** Popup / options -> background, on the user's click: ssh config, known_hosts, client key, relay script. */
  bundle: KeyFile[];
  /** Popup -> background: the companion notebook as a file, when the container refused it. */
  companionNotebook: KeyFile[];
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
  | { kind: 'connectionEvent'; event: ConnectionEvent }
  | { kind: 'classifyAnswer'; seen: AnswerSeen; attempt: number; waitedMs: number }
  | { kind: 'executeRequest'; code: string; session: string }
  | { kind: 'kernelMessage'; frame: string; requestId: string }
  | { kind: 'terminalInput'; source: string }
  | { kind: 'terminalOutput'; stdout: string; nonce: string }
  | { kind: 'terminalResumeAt'; stdout: string; lines: { frame: string; waitFor: string }[] }
  | { kind: 'relaySettings' }
  | { kind: 'saveRelay'; relay: RelayInput }
  | { kind: 'setAutoConnect'; autoConnect: boolean }
  | { kind: 'checkSelfHosted'; input: SelfHostedInput }
  | { kind: 'addSelfHosted'; input: SelfHostedInput }
  | { kind: 'selfHostedServers' }
  | { kind: 'removeSelfHosted'; name: string }
  | { kind: 'projectSettings'; projectId: string }
  | { kind: 'saveProjectSettings'; projectId: string; settings: ProjectSettings }
  | { kind: 'relayScript'; projectId: string }
  | { kind: 'projectView'; projectId: string }
  | { kind: 'connect'; tabId: number }
  | { kind: 'disconnect'; tabId: number }
  | { kind: 'bundle'; projectId: string; passphrase?: string }
  | { kind: 'companionNotebook'; projectId: string }
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
