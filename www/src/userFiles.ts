// The files a user downloads for a project: ssh config, known_hosts, the client key, the
// relay setup script, and the companion notebook.
import { encryptPrivateKey } from '../../build/wasm/aistudio_ssh.js';
import { storedProjectKeys } from './keys';
import type { KeyFile } from './messages';
import { namedError } from './requestTable';
import { rendered } from './settings';

/** The client key as files named the way users expect; protected when a passphrase is given. */
export async function clientKeyFiles(projectId: string, passphrase?: string): Promise<KeyFile[]> {
  const client = (await storedProjectKeys(projectId))?.client;
  if (!client) throw namedError('NoClientKey', `project ${projectId} has no client key yet`);
  const files = [{ name: 'id_aistudio.pub', text: `${client.public.line}\n` }];
  if (client.privateKey) {
    const text = passphrase ? encryptPrivateKey(client.privateKey, passphrase) : client.privateKey;
    files.unshift({ name: 'id_aistudio', text });
  }
  return files;
}

/** The user's files for a project: ssh config, known_hosts, the client key, the relay setup script. */
export async function bundleFiles(projectId: string, passphrase?: string): Promise<KeyFile[]> {
  const render = await rendered(projectId);
  if (!render) throw namedError('NoRelay', 'set up the relay in the options first');
  return [
    { name: 'ssh_config', text: render.rendered.sshConfig },
    { name: 'known_hosts', text: render.rendered.knownHosts },
    ...(await clientKeyFiles(projectId, passphrase)),
    { name: 'relay-setup.sh', text: render.rendered.relaySetup },
  ];
}

/** The relay setup script for a project. */
export async function relayScript(projectId: string): Promise<string> {
  const render = await rendered(projectId);
  if (!render) throw namedError('NoRelay', 'set up the relay first');
  return render.rendered.relaySetup;
}

/** The companion notebook as a file, for a container that refused it. */
export async function companionNotebookFiles(projectId: string): Promise<KeyFile[]> {
  const render = await rendered(projectId);
  if (!render) throw namedError('NoRelay', 'set up the relay first');
  return [{ name: 'aistudio-ssh.ipynb', text: `${JSON.stringify(render.rendered.notebook, null, 1)}\n` }];
}
