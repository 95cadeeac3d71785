// Settings in the background: the shared relay, each project's own part, auto-connect, and
// what the core renders from them. The core validates; this file stores.
import {
  RenderedProject, checkProjectSettings, checkRelay, nextRemotePort, projectView,
} from '../../build/wasm/aistudio_ssh.js';
import type { FieldError, RelayInput } from '../../build/wasm/aistudio_ssh.js';
import { ensureProjectKeys } from './keys';
import type { ProjectSettings } from './messages';
import {
  AUTO_CONNECT_KEY, RELAY_KEY, allProjectSettings, readLocal, readProjectSettings, serialized, writeLocal,
  writeProjectSettings,
} from './storage';

export const readRelay = () => readLocal(RELAY_KEY);
export const autoConnect = async () => (await readLocal(AUTO_CONNECT_KEY)) ?? false;
export const setAutoConnect = (on: boolean) => writeLocal(AUTO_CONNECT_KEY, on);

/** A project's settings, giving it the lowest relay port no other project uses. */
export async function projectSettings(projectId: string): Promise<ProjectSettings> {
  return serialized('settings', async () => {
    const stored = await readProjectSettings(projectId);
    if (stored) return stored;
    const taken = (await allProjectSettings()).map((settings) => settings.remotePort);
    // The route is stored from the start, so adding a relay later changes no project's route:
    // a new project connects directly unless the user keeps a relay for their projects.
    const route = (await readRelay()) ? 'relay' : 'direct';
    const settings: ProjectSettings = { remotePort: nextRemotePort(taken), route };
    await writeProjectSettings(projectId, settings);
    return settings;
  });
}

/** Saves the relay when the core accepts it. */
export async function saveRelay(relay: RelayInput): Promise<FieldError[]> {
  const errors = checkRelay(relay);
  if (errors.length === 0) await writeLocal(RELAY_KEY, relay);
  return errors;
}

/** Saves a project's own settings when the core accepts them (no relay needed). */
export async function saveProjectSettings(projectId: string, settings: ProjectSettings): Promise<FieldError[]> {
  const errors = checkProjectSettings(projectId, settings);
  if (errors.length === 0) await writeProjectSettings(projectId, settings);
  return errors;
}

/**
 * The project rendered once from its stored parts, or null when its settings do not render
 * (the relay route with no relay set). The handle holds wasm memory: `work` reads what it
 * needs synchronously (never awaits: the handle is freed as soon as it returns).
 */
export async function withRendered<T>(projectId: string, work: (project: RenderedProject) => T): Promise<T | null> {
  const relay = (await readRelay()) ?? null;
  const settings = await projectSettings(projectId);
  if (!projectView(projectId, relay, settings, null).route) return null;
  const keys = await ensureProjectKeys(projectId);
  const project = new RenderedProject(projectId, relay, settings, keys);
  try {
    return work(project);
  } finally {
    project.free();
  }
}
