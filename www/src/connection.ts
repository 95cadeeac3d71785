// Settings and connection state in the background: storage, and the wiring of the core's
// decisions (validation, rendering, status transitions) to tabs and the toolbar badge.
import {
  applyConnectionEvent, checkSettings, connectsByItself, renderProject, statusBadge,
} from '../../build/wasm/aistudio_ssh.js';
import { ensureProjectKeys, serialized, storedProjectKeys } from './keys';
import type {
  CellPlan, ConnectionEvent, FieldError, ProjectKeys, ProjectSettings, ProjectStatus, RelayInput, Step, TabNotebook,
} from './messages';
import { tabKey } from './messages';
import { ext } from './platform';

const RELAY_KEY = 'relay';
/** Unset until the first successful connect, which turns it on (the user can turn it off). */
const AUTO_CONNECT_KEY = 'autoConnect';
const settingsKey = (projectId: string) => `project:${projectId}:settings`;
const statusKey = (projectId: string) => `project:${projectId}:status`;
/** The first relay-side port; each further project takes the next free one. */
const FIRST_REMOTE_PORT = 7423;

async function read<T>(key: string): Promise<T | undefined> {
  return (await ext.storage.local.get(key))[key] as T | undefined;
}

export const readRelay = () => read<RelayInput>(RELAY_KEY);
export const autoConnect = async () => (await read<boolean>(AUTO_CONNECT_KEY)) ?? false;
export const setAutoConnect = (on: boolean) => ext.storage.local.set({ [AUTO_CONNECT_KEY]: on });
export const readStatus = (projectId: string) => read<ProjectStatus>(statusKey(projectId));

/** The settings input the core validates, from the shared relay and the project's own part. */
function settingsInput(projectId: string, relay: RelayInput, project: ProjectSettings) {
  return {
    project: projectId, relay, remotePort: project.remotePort, sshDir: project.sshDir || undefined,
    // Absent, not undefined: the core's default (`aistudio`) applies only to a missing field.
    ...(project.containerUser ? { containerUser: project.containerUser } : {}),
  };
}

/** A project's settings, giving it the lowest relay port no other project uses. */
export async function projectSettings(projectId: string): Promise<ProjectSettings> {
  return serialized('settings', async () => {
    const stored = await read<ProjectSettings>(settingsKey(projectId));
    if (stored) return stored;
    const all = await ext.storage.local.get(null);
    const taken = new Set(Object.entries(all)
      .filter(([key]) => key.endsWith(':settings'))
      .map(([, value]) => (value as ProjectSettings).remotePort));
    let remotePort = FIRST_REMOTE_PORT;
    while (taken.has(remotePort)) remotePort += 1;
    const settings = { remotePort };
    await ext.storage.local.set({ [settingsKey(projectId)]: settings });
    return settings;
  });
}

/** Saves the relay when the core accepts it (checked with this browser's first project or a stand-in). */
export async function saveRelay(relay: RelayInput): Promise<FieldError[]> {
  const errors = (checkSettings(settingsInput('0', relay, { remotePort: FIRST_REMOTE_PORT })) as FieldError[])
    .filter((error) => error.field.startsWith('relay.'));
  if (errors.length === 0) await ext.storage.local.set({ [RELAY_KEY]: relay });
  return errors;
}

export async function saveProjectSettings(projectId: string, settings: ProjectSettings): Promise<FieldError[]> {
  const relay = (await readRelay()) ?? { host: 'relay.invalid', port: 443, user: 'aistudio-tunnel', hostKey: '' };
  const errors = (checkSettings(settingsInput(projectId, relay, settings)) as FieldError[])
    .filter((error) => !error.field.startsWith('relay.'));
  if (errors.length === 0) await ext.storage.local.set({ [settingsKey(projectId)]: settings });
  return errors;
}

/** Everything rendered for a project (scripts, cells, ssh config), or null without a relay. */
export interface Rendered {
  provision: string;
  tunnel: string;
  probe: string;
  relaySetup: string;
  sshConfig: string;
  knownHosts: string;
  hostAlias: string;
  cells: { step: Step; source: string }[];
  stopTunnel: string;
  notebookPath: string;
  notebook: unknown;
  notebookDigest: string;
}

export async function rendered(projectId: string): Promise<{ rendered: Rendered; keys: ProjectKeys } | null> {
  const relay = await readRelay();
  if (!relay) return null;
  const keys = await ensureProjectKeys(projectId);
  const input = settingsInput(projectId, relay, await projectSettings(projectId));
  return { rendered: renderProject(input, keys) as Rendered, keys };
}

/** The cells for an action; a connect saves the companion notebook first. */
export function cellPlan(action: CellPlan['action'], r: Rendered): CellPlan {
  const probe = r.cells.filter((cell) => cell.step === 'probe');
  switch (action) {
    case 'connect':
      return { action, cells: r.cells, notebookPath: r.notebookPath, notebook: r.notebook, notebookDigest: r.notebookDigest };
    case 'disconnect':
      return { action, cells: [{ step: 'tunnel', source: r.stopTunnel }, ...probe] };
    case 'probe':
      return { action, cells: probe };
  }
}

const tabKeyPattern = /^tab:(\d+):notebook$/;

export async function readTabNotebook(tabId: number): Promise<TabNotebook | undefined> {
  const key = tabKey(tabId);
  return (await ext.storage.session.get(key))[key] as TabNotebook | undefined;
}

/** Tabs that show a project's notebook, with what is known of each. */
export async function tabsOfProject(projectId: string): Promise<[number, TabNotebook][]> {
  const all = await ext.storage.session.get(null);
  return Object.entries(all)
    .map(([key, value]) => [Number(tabKeyPattern.exec(key)?.[1]), value as TabNotebook] as [number, TabNotebook])
    .filter(([tabId, notebook]) => !Number.isNaN(tabId) && notebook.projectId === projectId);
}

export async function showBadge(tabId: number, status: ProjectStatus | undefined): Promise<void> {
  const badge = status ? (statusBadge(status) as { text: string; color: string }) : { text: '', color: '#9e9e9e' };
  await ext.action.setBadgeText({ tabId, text: badge.text });
  await ext.action.setBadgeBackgroundColor({ tabId, color: badge.color });
}

/** Applies an event to a project's status (one at a time per project) and shows it on its tabs. */
export function recordEvent(projectId: string, event: ConnectionEvent): Promise<ProjectStatus> {
  return serialized(`status:${projectId}`, async () => {
    // Events arrive before the notebook answers (its restore): they make no keys. The host key
    // matters only to a probe, which runs cells rendered with the keys.
    const keys = await storedProjectKeys(projectId);
    const before = (await readStatus(projectId)) ?? null;
    const status = applyConnectionEvent(before, event, keys?.containerHost?.public.fingerprint ?? '') as ProjectStatus;
    await ext.storage.local.set({ [statusKey(projectId)]: status });
    if (status.phase === 'up' && (await read<boolean>(AUTO_CONNECT_KEY)) === undefined) await setAutoConnect(true);
    for (const [tabId] of await tabsOfProject(projectId)) await showBadge(tabId, status).catch(() => undefined);
    return status;
  });
}

const wishKey = (projectId: string) => `project:${projectId}:connectWanted`;

/** Connect was clicked before the notebook's Jupyter answered (restore window): run once it does. */
export const wishToConnect = (projectId: string) => ext.storage.session.set({ [wishKey(projectId)]: true });

async function takeConnectWish(projectId: string): Promise<boolean> {
  const wanted = Boolean((await ext.storage.session.get(wishKey(projectId)))[wishKey(projectId)]);
  if (wanted) await ext.storage.session.remove(wishKey(projectId));
  return wanted;
}

/**
 * When a notebook's Jupyter is ready: the cells to run if the extension connects by itself
 * (marked running at once, so a second frame or tab of the project does not run them too).
 */
export async function planOnReady(projectId: string, started: string, zone: string): Promise<CellPlan | null> {
  const render = await rendered(projectId);
  if (!render) {
    await recordEvent(projectId, { kind: 'noSettings' });
    return null;
  }
  return serialized(`ready:${projectId}`, async () => {
    const status = await recordEvent(projectId, { kind: 'jupyterReady', started, zone });
    const wanted = await takeConnectWish(projectId);
    if (!wanted && !connectsByItself(status, true, await autoConnect())) return null;
    await recordEvent(projectId, { kind: 'stepStarted', step: 'provision' });
    return cellPlan('connect', render.rendered);
  });
}
