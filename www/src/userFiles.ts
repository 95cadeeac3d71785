// The files a user downloads for a project, as the core names and orders them: ssh config,
// known_hosts, the client key, the relay setup script, and the companion notebook.
import { clientKeyFiles as coreClientKeyFiles } from '../../build/wasm/aistudio_ssh.js';
import type { RenderedProject, UserFile } from '../../build/wasm/aistudio_ssh.js';
import { storedProjectKeys } from './keys';
import { namedError } from './requestTable';
import { withRendered } from './settings';

async function fromRendered<T>(projectId: string, read: (project: RenderedProject) => T): Promise<T> {
  const result = await withRendered(projectId, read);
  if (result === null) throw namedError('NoRelay', 'set up the relay in the options first, or choose the direct route');
  return result;
}

/** The client key's files; the private one protected when a passphrase is given. */
export async function clientKeyFiles(projectId: string, passphrase?: string): Promise<UserFile[]> {
  return coreClientKeyFiles((await storedProjectKeys(projectId))?.client, passphrase);
}

/** The user's files for a project. */
export const bundleFiles = (projectId: string, passphrase?: string): Promise<UserFile[]> =>
  fromRendered(projectId, (project) => project.userFiles(passphrase));

/** The relay setup script for a project. */
export const relayScript = async (projectId: string): Promise<string> => {
  const script = await fromRendered(projectId, (project) => project.relaySetup);
  if (script === undefined) throw namedError('NoRelay', 'this project connects directly: it needs no relay');
  return script;
};

/** The companion notebook as a file, for a container that refused it. */
export const companionNotebookFiles = (projectId: string): Promise<UserFile[]> =>
  fromRendered(projectId, (project) => [project.notebookFile()]);
