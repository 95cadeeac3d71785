// The simulator's container: a real JupyterLab (3.6 or 4) running as an unprivileged
// container user and a real root sshd as the container's port 22, on a machine with a zone
// and maybe a GPU; restarted and switched between machines the way AI Studio does it.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, stopProcessGroup } from '../processes.mjs';

/** The container's notebook user, as on AI Studio. */
export const CONTAINER_USER = 'aistudio';

function ensureContainerUser() {
  try {
    execFileSync('id', [CONTAINER_USER], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', '--shell', '/bin/bash', CONTAINER_USER]);
  }
  return execFileSync('getent', ['passwd', CONTAINER_USER], { encoding: 'utf8' }).split(':')[5];
}

/** The container's /tmp is this machine's: what its user left there goes with the container. */
export function wipeContainerTmp() {
  spawnSync('find', ['/tmp', '-xdev', '-mindepth', '1', '-user', CONTAINER_USER, '-delete']);
}

/** Zones by accelerator; AI Studio's zone names vary, and are not a reliable CPU/GPU signal. */
const ZONES = { cpu: 'bd-cpu-01', gpu: 'bd-gpu-01', dcu: 'bd-gpu-04' };
/** A stand-in for a Sugon/Hygon DCU's `hy-smi` (rocm-smi's product lines); on PATH only on DCU machines. */
const HY_SMI = `#!/bin/sh
echo "============================ System Management Interface ============================"
echo "DCU[0]		: Card series: 		K100_AI"
echo "DCU[0]		: Card vendor: 		Chengdu Haiguang IC Design Co., Ltd."
`;
/** A stand-in for the V100's `nvidia-smi` (this machine has no GPU); on PATH only on GPU machines. */
const NVIDIA_SMI = `#!/bin/sh
if [ "$1" = "-L" ]; then echo "GPU 0: Tesla V100-SXM2-32GB (UUID: GPU-5a1d0000-aist-udio-0000-simulator00)"; exit 0; fi
echo "| NVIDIA-SMI 470.82.01    Driver Version: 470.82.01    CUDA Version: 11.4 |"
echo "|   0  Tesla V100-SXM2...  On   | 00000000:00:08.0 Off |                    0 |"
`;

const EMPTY_NOTEBOOK = {
  cells: [], metadata: { kernelspec: { name: 'python3', display_name: 'Python 3', language: 'python' } },
  nbformat: 4, nbformat_minor: 5,
};
/** Sends `time.sleep(600)` to a kernel and leaves without waiting: the kernel stays busy. */
const BUSY_KERNEL_CLIENT = `
import sys, time
from jupyter_client import BlockingKernelClient, find_connection_file
client = BlockingKernelClient(connection_file=find_connection_file(f"kernel-{sys.argv[1]}.json"))
client.load_connection_file()
client.start_channels()
client.wait_for_ready(timeout=30)
request = client.execute("import time\\ntime.sleep(600)")
deadline = time.time() + 30
while time.time() < deadline:
    message = client.get_iopub_msg(timeout=30)
    if message["parent_header"].get("msg_id") == request and message["msg_type"] == "status" \\
            and message["content"]["execution_state"] == "busy":
        break
client.stop_channels()
`;

/** Starts a root sshd on 127.0.0.1:22 with `hostKey`: the container's own sshd on port 22. */
function startSystemSshd(machineDir) {
  mkdirSync('/run/sshd', { recursive: true });
  const config = join(machineDir, 'sshd_config');
  writeFileSync(config, `Port 22\nListenAddress 127.0.0.1\nHostKey ${join(machineDir, 'ssh_host_ed25519_key')}\n`
    + `PidFile ${join(machineDir, 'sshd.pid')}\nUsePAM no\nPasswordAuthentication no\n`);
  execFileSync('/usr/sbin/sshd', ['-f', config, '-E', join(machineDir, 'sshd.log')]);
}

/** A machine: its zone, whether it has a GPU, and its system sshd host key (made once). */
function newMachine(dir, accelerator, serial) {
  const machineDir = join(dir, `machine-${serial}-${accelerator}`);
  mkdirSync(machineDir, { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(machineDir, 'ssh_host_ed25519_key')]);
  const gpuBin = join(machineDir, 'bin');
  const tool = { gpu: ['nvidia-smi', NVIDIA_SMI], dcu: ['hy-smi', HY_SMI] }[accelerator];
  if (tool) {
    mkdirSync(gpuBin, { mode: 0o755 });
    writeFileSync(join(gpuBin, tool[0]), tool[1], { mode: 0o755 });
  }
  return { dir: machineDir, accelerator, zone: ZONES[accelerator], pathPrefix: tool ? `${gpuBin}:` : '' };
}

/** Ends every process of the container user (exits 1 when none was left: fine). */
export const killContainerUserProcesses = () => spawnSync('pkill', ['-KILL', '-u', CONTAINER_USER]);

/**
 * One container at a time on a machine; nothing runs until `start()`. Tells the front through
 * events, synchronously, at the moments it must know: `spawned` (a Jupyter server is there to
 * forward to, not yet answering), `up` (it answers), `stopped` (it is gone).
 */
export class Container extends EventEmitter {
  #dir;
  #venv;
  #jupyterlab;
  #userId;
  #projectId;
  #terminals;
  #machines = 0;
  #machine;
  /** The running Jupyter server: `{ process, port, token, log }`, or undefined. */
  #server;

  /**
   * @param {{ dir: string, venv: string, jupyterlab: '3.6' | '4', accelerator: 'cpu' | 'gpu' | 'dcu',
   *   userId: string, projectId: string, terminals: boolean }} options
   */
  constructor({ dir, venv, jupyterlab, accelerator, userId, projectId, terminals }) {
    super();
    this.#dir = dir;
    this.#venv = venv;
    this.#jupyterlab = jupyterlab;
    this.#userId = userId;
    this.#projectId = projectId;
    this.#terminals = terminals;
    this.home = ensureContainerUser();
    this.#machine = newMachine(dir, accelerator, this.#machines++);
  }

  get zone() { return this.#machine.zone; }
  get accelerator() { return this.#machine.accelerator; }
  /** The Jupyter base path, as AI Studio's gateway serves it: the zone, user and project in it. */
  get base() { return `/${this.#machine.zone}/user/${this.#userId}/${this.#projectId}/`; }
  /** Where the running Jupyter server listens on loopback, and its token; undefined between containers. */
  get jupyter() { return this.#server && { port: this.#server.port, token: this.#server.token }; }
  /** The end of the running Jupyter server's stderr. */
  get log() { return this.#server?.log ?? ''; }
  /** A path in the container user's home. */
  path(relative) { return join(this.home, relative); }

  /** A JupyterLab as the container user and a root sshd on 127.0.0.1:22; resolves once Jupyter answers. */
  async start() {
    const { home } = this;
    const venv = this.#venv;
    const machine = this.#machine;
    for (const kept of ['work', 'data']) mkdirSync(join(home, kept), { recursive: true });
    execFileSync('chown', ['-R', `${CONTAINER_USER}:`, home]);
    startSystemSshd(machine.dir);
    const port = await freePort();
    const token = randomBytes(16).toString('hex');
    const jupyter = spawn('runuser', ['-u', CONTAINER_USER, '--', 'env', `HOME=${home}`,
      // AI Studio's images name a locale they do not have (only C, C.UTF-8 and POSIX here).
      'LANG=en_US.UTF-8',
      `PATH=${machine.pathPrefix}${venv}/bin:/usr/bin:/bin`, `${venv}/bin/jupyter`, 'lab', '--no-browser',
      '--ip=127.0.0.1', `--port=${port}`, `--ServerApp.base_url=${this.base}`, `--ServerApp.token=${token}`,
      `--ServerApp.root_dir=${home}`,
      // Requests arrive through the front with Host: aistudio.baidu.com, as on AI Studio.
      '--ServerApp.allow_remote_access=True',
      // Terminals keep the container's environment (a login shell would reset PATH from /etc/profile).
      `--ServerApp.terminado_settings={'shell_command': ['/bin/bash']}`,
      `--ServerApp.terminals_enabled=${this.#terminals ? 'True' : 'False'}`],
    { cwd: home, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    const server = { process: jupyter, port, token, log: '' };
    this.#server = server;
    jupyter.stderr.on('data', (chunk) => { server.log = (server.log + chunk).slice(-20_000); });
    this.emit('spawned');
    const deadline = Date.now() + 60_000;
    for (;;) {
      // Straight to Jupyter, not through the front's restore window.
      const up = await fetch(`http://127.0.0.1:${port}${this.base}api/status`, {
        headers: { authorization: `token ${token}` },
      }).then((r) => r.ok, () => false);
      if (up) break;
      if (Date.now() > deadline || jupyter.exitCode !== null) {
        const log = this.log;
        await this.stop();
        throw new Error(`JupyterLab ${this.#jupyterlab} did not start:\n${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    this.emit('up');
  }

  /** Stops Jupyter's process group and the system sshd. */
  async stop() {
    if (this.#server) await stopProcessGroup(this.#server.process.pid);
    this.#server = undefined;
    const sshdPid = Number(readFileSync(join(this.#machine.dir, 'sshd.pid'), 'utf8').trim());
    try { process.kill(sshdPid, 'SIGTERM'); } catch { /* already gone */ }
    this.emit('stopped');
  }

  /** A new container: only `kept` of HOME survive (~/work and ~/data on a restart), /tmp is fresh. */
  wipeFiles(kept = ['work', 'data']) {
    killContainerUserProcesses();
    for (const entry of readdirSync(this.home)) {
      if (!kept.includes(entry)) rmSync(join(this.home, entry), { recursive: true, force: true });
    }
    wipeContainerTmp();
  }

  /** A new container on the same machine (an environment restart). */
  async restart() {
    await this.stop();
    this.wipeFiles();
    await this.start();
  }

  /** A new container on another machine: another zone, system host key and accelerator. */
  async switchTo(accelerator) {
    await this.stop();
    this.wipeFiles();
    this.#machine = newMachine(this.#dir, accelerator, this.#machines++);
    await this.start();
  }

  /** GET of a Jupyter API, straight to the server with its token. */
  async jupyterGet(path) {
    const response = await fetch(`http://127.0.0.1:${this.#server.port}${this.base}${path}`, {
      headers: { authorization: `token ${this.#server.token}` },
    });
    if (!response.ok) throw new Error(`GET ${path}: ${response.status}`);
    return response.json();
  }

  /** The execution state Jupyter reports for each kernel. */
  async kernelStates() {
    return (await this.jupyterGet('api/kernels')).map((kernel) => kernel.execution_state);
  }

  /** The names of the terminals Jupyter runs (none when terminals are off). */
  async terminalNames() {
    return this.#terminals ? (await this.jupyterGet('api/terminals')).map((terminal) => terminal.name) : [];
  }

  /** Opens `work/<name>` with a kernel that then runs `time.sleep(600)`; returns the notebook's path. */
  async busyKernel(name) {
    const { home } = this;
    const { port, token } = this.#server;
    const path = `work/${name}`;
    const api = (rest, method = 'GET', body) => fetch(`http://127.0.0.1:${port}${this.base}${rest}`, {
      method,
      headers: { authorization: `token ${token}`, 'content-type': 'application/json' },
      body: body && JSON.stringify(body),
    }).then(async (response) => {
      if (!response.ok) throw new Error(`${method} ${rest}: ${response.status} ${await response.text()}`);
      return response.json();
    });
    await api(`api/contents/${path}`, 'PUT', { type: 'notebook', content: EMPTY_NOTEBOOK });
    const session = await api('api/sessions', 'POST', { path, name, type: 'notebook', kernel: { name: 'python3' } });
    // jupyter_client from the container's venv, as the container user, through the kernel's connection file.
    execFileSync('runuser', ['-u', CONTAINER_USER, '--', 'env', `HOME=${home}`, `${this.#venv}/bin/python`, '-c', BUSY_KERNEL_CLIENT,
      session.kernel.id], { stdio: 'ignore', timeout: 60_000 });
    return path;
  }

  /** Runs a notebook's cells top to bottom with nbconvert --execute and a real kernel; returns its stdout. */
  runNotebookByHand(path) {
    const { home } = this;
    const venv = this.#venv;
    return execFileSync('runuser', ['-u', CONTAINER_USER, '--', 'env', `HOME=${home}`,
      `PATH=${this.#machine.pathPrefix}${venv}/bin:/usr/bin:/bin`, `${venv}/bin/jupyter`, 'nbconvert', '--to', 'notebook',
      '--execute', '--stdout', join(home, path)], { cwd: home, encoding: 'utf8', timeout: 180_000, stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Runs a notebook's `%%bash` cells, in order, as one plain bash; resolves with its exit code. */
  runCellsInShell(path) {
    const { home } = this;
    const notebook = JSON.parse(readFileSync(join(home, path), 'utf8'));
    const scripts = notebook.cells.filter((c) => c.cell_type === 'code')
      .map((cell) => [cell.source].flat().join('').replace(/^%%bash\n/, ''));
    const shell = spawn('runuser', ['-u', CONTAINER_USER, '--', 'env', `HOME=${home}`,
      `PATH=${this.#machine.pathPrefix}/usr/bin:/bin`, 'bash', '-c', scripts.join('\n')], { cwd: home, stdio: 'ignore' });
    return new Promise((resolve) => shell.on('exit', resolve));
  }
}
