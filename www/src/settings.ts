// Settings in the background: the shared relay, each project's own part, auto-connect, and
// what the core renders from them. The core validates; this file stores.
import { checkSettings, renderProject } from '../../build/wasm/aistudio_ssh.js';
import type { FieldError, ProjectKeys, RelayInput, ProjectBundle, SettingsInput } from '../../build/wasm/aistudio_ssh.js';
import { ensureProjectKeys } from './keys';
import type { ProjectSettings } from './messages';
import {
  AUTO_CONNECT_KEY, RELAY_KEY, allProjectSettings, readLocal, readProjectSettings, serialized, writeLocal,
  writeProjectSettings,
} from './storage';

/** The first relay-side port; each further project takes the next free one. */
const FIRST_REMOTE_PORT = 7423;

export const readRelay = () => readLocal(RELAY_KEY);
export const autoConnect = async () => (await readLocal(AUTO_CONNECT_KEY)) ?? false;
/** Whether the user (or the first successful connect) ever chose. */
export const autoConnectChosen = async () => (await readLocal(AUTO_CONNECT_KEY)) !== undefined;
export const setAutoConnect = (on: boolean) => writeLocal(AUTO_CONNECT_KEY, on);

/** The settings input the core validates, from the shared relay and the project's own part. */
function settingsInput(projectId: string, relay: RelayInput, project: ProjectSettings): SettingsInput {
  return {
    project: projectId, relay, remotePort: project.remotePort, sshDir: project.sshDir || undefined,
    // Absent, not undefined: the core's default (`aistudio`) applies only to a missing field.
    ...(project.containerUser ? { containerUser: project.containerUser } : {}),
  };
}

/** A project's settings, giving it the lowest relay port no other project uses. */
export async function projectSettings(projectId: string): Promise<ProjectSettings> {
  return serialized('settings', async () => {
    const stored = await readProjectSettings(projectId);
    if (stored) return stored;
    const taken = new Set((await allProjectSettings()).map((settings) => settings.remotePort));
    let remotePort = FIRST_REMOTE_PORT;
    while (taken.has(remotePort)) remotePort += 1;
    const settings = { remotePort };
    await writeProjectSettings(projectId, settings);
    return settings;
  });
}

/** Saves the relay when the core accepts it (checked with this browser's first project or a stand-in). */
export async function saveRelay(relay: RelayInput): Promise<FieldError[]> {
  const errors = checkSettings(settingsInput('0', relay, { remotePort: FIRST_REMOTE_PORT }))
    .filter((error) => error.field.startsWith('relay.'));
  if (errors.length === 0) await writeLocal(RELAY_KEY, relay);
  return errors;
}

export async function saveProjectSettings(projectId: string, settings: ProjectSettings): Promise<FieldError[]> {
  const relay = (await readRelay()) ?? { host: 'relay.invalid', port: 443, user: 'aistudio-tunnel', hostKey: '' };
  const errors = checkSettings(settingsInput(projectId, relay, settings))
    .filter((error) => !error.field.startsWith('relay.'));
  if (errors.length === 0) await writeProjectSettings(projectId, settings);
  return errors;
}

/** Everything rendered for a project (scripts, cells, ssh config), or null without a relay. */
export async function rendered(projectId: string): Promise<{ rendered: ProjectBundle; keys: ProjectKeys } | null> {
  const relay = await readRelay();
  if (!relay) return null;
  const keys = await ensureProjectKeys(projectId);
  const input = settingsInput(projectId, relay, await projectSettings(projectId));
  return { rendered: renderProject(input, keys), keys };
}
