// Self-hosted Jupyter servers: the user's list, the optional host permission each needs, and
// the content script registered for the granted origins (AI Studio's is in the manifest).
import { checkSelfHosted, locatePage } from '../../build/wasm/aistudio_ssh.js';
import type {
  FieldError, NotebookLocation, SelfHostedInput, SelfHostedJupyter,
} from '../../build/wasm/aistudio_ssh.js';
import { ext } from './platform';
import { namedError } from './requestTable';
import { projectSettings, saveProjectSettings } from './settings';
import { SELF_HOSTED_KEY, readLocal, serialized, writeLocal } from './storage';

/** The id of the one dynamically registered content script. */
const SCRIPT_ID = 'self-hosted-jupyter';

async function readSelfHosted(): Promise<SelfHostedJupyter[]> {
  return (await readLocal(SELF_HOSTED_KEY)) ?? [];
}

/** The notebook a page shows: AI Studio's, or one under a self-hosted server. */
export async function locate(url: string): Promise<NotebookLocation | null> {
  return locatePage(url, await readSelfHosted());
}

const granted = (server: SelfHostedJupyter) => ext.permissions.contains({ origins: [server.originPattern] });

/** The servers with whether the browser grants their origin now (the user can revoke it any time). */
export async function listSelfHosted(): Promise<(SelfHostedJupyter & { granted: boolean })[]> {
  const servers = await readSelfHosted();
  return Promise.all(servers.map(async (server) => ({ ...server, granted: await granted(server) })));
}

/**
 * Registers the content script for the granted servers' origins (or none). Run at every
 * worker start and on every permission change, so it follows what the user granted.
 */
export function syncContentScripts(): Promise<void> {
  return serialized('contentScripts', async () => {
    const origins = new Set<string>();
    for (const server of await listSelfHosted()) if (server.granted) origins.add(server.originPattern);
    const matches = [...origins].sort();
    const registered = await ext.scripting.getRegisteredContentScripts({ ids: [SCRIPT_ID] });
    // Unchanged (most worker starts): leave it, so no page loads in a gap without it.
    if (JSON.stringify(registered[0]?.matches?.slice().sort() ?? []) === JSON.stringify(matches)) return;
    if (registered.length > 0) await ext.scripting.unregisterContentScripts({ ids: [SCRIPT_ID] });
    if (matches.length === 0) return;
    await ext.scripting.registerContentScripts([{
      id: SCRIPT_ID, matches, js: ['content.js'], allFrames: true, runAt: 'document_idle',
      persistAcrossSessions: true,
    }]);
  });
}

/**
 * Adds (or updates) a server once its origin is granted: the options page asked the browser
 * for it on the user's click. Pages of it already open get the content script at once.
 */
export async function addSelfHosted(input: SelfHostedInput): Promise<FieldError[]> {
  const checked = checkSelfHosted(input);
  if ('errors' in checked) return checked.errors;
  const { server } = checked;
  if (!(await granted(server))) {
    throw namedError('NotGranted', `the browser has not granted access to ${server.originPattern}`);
  }
  await serialized('selfHosted', async () => {
    const others = (await readSelfHosted()).filter((s) => s.name !== server.name);
    await writeLocal(SELF_HOSTED_KEY, [...others, server]);
  });
  const errors = await saveProjectSettings(server.name, { ...(await projectSettings(server.name)), containerUser: server.user });
  await syncContentScripts();
  for (const tab of await ext.tabs.query({ url: server.originPattern })) {
    if (tab.id === undefined || !tab.url?.startsWith(server.baseUrl)) continue;
    await ext.scripting.executeScript({ target: { tabId: tab.id, allFrames: true }, files: ['content.js'] }).catch(() => undefined);
  }
  return errors;
}

/** Forgets a server and gives its origin back unless another server shares it. */
export async function removeSelfHosted(name: string): Promise<void> {
  // The same lock as an add: a remove right after an add must not write back a list without it.
  const { gone, kept } = await serialized('selfHosted', async () => {
    const servers = await readSelfHosted();
    const kept = servers.filter((s) => s.name !== name);
    await writeLocal(SELF_HOSTED_KEY, kept);
    return { gone: servers.find((s) => s.name === name), kept };
  });
  if (gone && !kept.some((s) => s.originPattern === gone.originPattern)) {
    await ext.permissions.remove({ origins: [gone.originPattern] });
  }
  await syncContentScripts();
}
