// The background's requests: kind -> who may send it -> handler. The request and reply types
// of `send` follow from this table, so a new request is one entry here. Content scripts may
// send only the kinds marked `contentScripts`: keys and settings are for extension pages.
import {
  checkSelfHosted, classifyAnswer, coreVersion, executeRequest, hostAlias, isProjectId, projectKeysView,
  readKernelMessage, readTerminalOutput, terminalInput, terminalResumeAt,
} from '../../build/wasm/aistudio_ssh.js';
import type {
  AnswerSeen, CellAction, ConnectionEvent, RelayInput, SelfHostedInput, TerminalLine,
} from '../../build/wasm/aistudio_ssh.js';
import { projectView, runInTab } from './connection';
import { helperStatus } from './direct';
import { clientKeyFrom, ensureProjectKeys, projectsWithKeys, replaceClientKey } from './keys';
import type { ClientKeySource, ProjectSettings } from './messages';
import { type ReplyOf, type RequestOf, type RequestTable, type Sender, namedError } from './requestTable';
import { addSelfHosted, listSelfHosted, removeSelfHosted } from './selfHosted';
import {
  autoConnect, projectSettings, readRelay, saveProjectSettings, saveRelay, setAutoConnect,
} from './settings';
import { readTabNotebook } from './storage';
import { frameEvent, jupyterReady, pageOpened, probed } from './tabs';
import { bundleFiles, clientKeyFiles, companionNotebookFiles, relayScript } from './userFiles';

function checkedProjectId(projectId: string): string {
  if (!isProjectId(projectId)) {
    throw namedError('InvalidProjectId', `project id ${JSON.stringify(projectId)} is not letters, digits, - or _`);
  }
  return projectId;
}

type ForProject = { projectId: string };

export const REQUESTS = {
  // Any context: the wasm core is up and its version.
  coreInfo: { from: 'contentScripts', handle: () => ({ coreVersion: coreVersion() }) },

  // Content scripts, about the frame they run in (read from the sender, not from the page).
  /** "I run in this frame": the notebook it shows, if any. */
  pageOpened: { from: 'contentScripts', handle: (_: object, sender: Sender) => pageOpened(sender) },
  /** The page's Jupyter Server answers; what to run, if anything. */
  jupyterReady: {
    from: 'contentScripts',
    handle: ({ started }: { started: string }, sender: Sender) => jupyterReady(sender, String(started)),
  },
  /** What happened while it waited or ran cells. */
  connectionEvent: {
    from: 'contentScripts',
    handle: ({ event }: { event: ConnectionEvent }, sender: Sender) => frameEvent(sender, event),
  },
  /** A probe's output: the status, and when to probe again. */
  probed: {
    from: 'contentScripts',
    handle: ({ output, action, tries }: { output: string; action: CellAction; tries: number }, sender: Sender) =>
      probed(sender, output, action, tries),
  },

  // Content scripts: what the core says of frames and answers (no wasm in content scripts).
  /** What an answer of the platform means. */
  classifyAnswer: {
    from: 'contentScripts',
    handle: ({ seen, attempt, waitedMs }: { seen: AnswerSeen; attempt: number; waitedMs: number }) =>
      classifyAnswer(seen, attempt, waitedMs),
  },
  /** An execute_request frame for its kernel. */
  executeRequest: {
    from: 'contentScripts',
    handle: ({ code, session }: { code: string; session: string }) => {
      const requestId = crypto.randomUUID();
      return { requestId, frame: executeRequest(requestId, session, code, new Date().toISOString()) };
    },
  },
  /** What a kernel frame means for its request. */
  kernelMessage: {
    from: 'contentScripts',
    handle: ({ frame, requestId }: { frame: string; requestId: string }) => readKernelMessage(frame, requestId),
  },
  /** The frames that run a cell in a terminal. */
  terminalInput: {
    from: 'contentScripts',
    handle: ({ source }: { source: string }) => {
      const nonce = crypto.randomUUID().replace(/-/g, '');
      return { nonce, lines: terminalInput(source, nonce) };
    },
  },
  /** After a cut WebSocket was reopened: the first line to send again. */
  terminalResumeAt: {
    from: 'contentScripts',
    handle: ({ stdout, lines }: { stdout: string; lines: TerminalLine[] }) => terminalResumeAt(stdout, lines),
  },
  /** The cell's result once the terminal output holds its end. */
  terminalOutput: {
    from: 'contentScripts',
    handle: ({ stdout, nonce }: { stdout: string; nonce: string }) => readTerminalOutput(stdout, nonce),
  },

  // Options page: the relay, auto-connect, self-hosted servers, project settings.
  relaySettings: {
    from: 'extensionPages',
    handle: async () => ({ relay: (await readRelay()) ?? null, autoConnect: await autoConnect() }),
  },
  /** Saves the relay when valid; the invalid fields otherwise. */
  saveRelay: { from: 'extensionPages', handle: ({ relay }: { relay: RelayInput }) => saveRelay(relay) },
  setAutoConnect: {
    from: 'extensionPages',
    handle: async ({ autoConnect: on }: { autoConnect: boolean }) => {
      await setAutoConnect(Boolean(on));
      return autoConnect();
    },
  },
  /** What the core says of a typed self-hosted server. */
  checkSelfHosted: { from: 'extensionPages', handle: ({ input }: { input: SelfHostedInput }) => checkSelfHosted(input) },
  /** Once the browser granted the origin: adds the server. */
  addSelfHosted: { from: 'extensionPages', handle: ({ input }: { input: SelfHostedInput }) => addSelfHosted(input) },
  /** The self-hosted servers and whether their origin is granted. */
  selfHostedServers: {
    from: 'extensionPages',
    handle: async () => (await listSelfHosted()).map((server) => ({ ...server, hostAlias: hostAlias(server.name) })),
  },
  /** Forgets a server and gives its origin back. */
  removeSelfHosted: {
    from: 'extensionPages',
    handle: async ({ name }: { name: string }) => {
      await removeSelfHosted(name);
      return null;
    },
  },
  projectSettings: {
    from: 'extensionPages',
    handle: ({ projectId }: ForProject) => projectSettings(checkedProjectId(projectId)),
  },
  /** Saves a project's settings when valid; the invalid fields otherwise. */
  saveProjectSettings: {
    from: 'extensionPages',
    handle: ({ projectId, settings }: ForProject & { settings: ProjectSettings }) =>
      saveProjectSettings(checkedProjectId(projectId), settings),
  },
  relayScript: { from: 'extensionPages', handle: ({ projectId }: ForProject) => relayScript(checkedProjectId(projectId)) },

  // Popup: the tab's project and the user's actions.
  /** A project's state and its ssh command. */
  projectView: { from: 'extensionPages', handle: ({ projectId }: ForProject) => projectView(checkedProjectId(projectId)) },
  /** Run the cells in the tab's notebook now. */
  connect: { from: 'extensionPages', handle: ({ tabId }: { tabId: number }) => runInTab(tabId, 'connect') },
  /** Stop the tab's tunnel. */
  disconnect: { from: 'extensionPages', handle: ({ tabId }: { tabId: number }) => runInTab(tabId, 'disconnect') },
  /** Whether the helper answers (started if it is not running), and the project's link. */
  helperStatus: { from: 'extensionPages', handle: ({ projectId }: ForProject) => helperStatus(checkedProjectId(projectId)) },
  /** The notebook last seen in a tab. */
  tabNotebook: {
    from: 'extensionPages',
    handle: async ({ tabId }: { tabId: number }) => (await readTabNotebook(tabId)) ?? null,
  },

  // Popup and options, on the user's click: files to download.
  /** ssh config, known_hosts, client key, relay script. */
  bundle: {
    from: 'extensionPages',
    handle: ({ projectId, passphrase }: ForProject & { passphrase?: string }) =>
      bundleFiles(checkedProjectId(projectId), passphrase),
  },
  /** The companion notebook as a file, when the container refused it. */
  companionNotebook: {
    from: 'extensionPages',
    handle: ({ projectId }: ForProject) => companionNotebookFiles(checkedProjectId(projectId)),
  },
  exportClientKey: {
    from: 'extensionPages',
    handle: ({ projectId, passphrase }: ForProject & { passphrase?: string }) =>
      clientKeyFiles(checkedProjectId(projectId), passphrase),
  },

  // Options page: the projects' keys, public halves only.
  /** The project's keys, made if missing. */
  projectKeys: {
    from: 'extensionPages',
    handle: async ({ projectId }: ForProject) => {
      const id = checkedProjectId(projectId);
      return projectKeysView(id, await ensureProjectKeys(id));
    },
  },
  /** Projects that have keys. */
  listProjects: { from: 'extensionPages', handle: () => projectsWithKeys() },
  /** A new client key, by the user's choice. */
  replaceClientKey: {
    from: 'extensionPages',
    handle: async ({ projectId, source }: ForProject & { source: ClientKeySource }) => {
      const id = checkedProjectId(projectId);
      return projectKeysView(id, await replaceClientKey(id, await clientKeyFrom(id, source)));
    },
  },
} as const satisfies RequestTable;

type Requests = typeof REQUESTS;
/** Every request the background answers. */
export type Request = RequestOf<Requests>;
/** What the background answers to a kind. */
export type Reply<K extends keyof Requests> = ReplyOf<Requests, K>;
