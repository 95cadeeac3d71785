// The simulator's relay server: where the relay setup script the extension prints runs for real.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The relay stands on its own loopback address, so it can serve port 443 beside the front. */
export const RELAY_ADDRESS = '127.0.0.2';
export const RELAY_PORT = 443;
/** The tunnel-only account the extension's relay setup script expects by default. */
export const RELAY_USER = 'aistudio-tunnel';

/** Removes the tunnel account the relay script made (and its sessions), if there is one. */
function removeRelayUser() {
  spawnSync('pkill', ['-KILL', '-u', RELAY_USER]);
  spawnSync('userdel', [RELAY_USER]);
}

/**
 * A relay server: a root sshd on 127.0.0.2:443 with a drop-in directory, where the
 * extension's relay setup script runs for real (its sshd paths redirected here). The
 * script makes the tunnel account itself (it refuses one it did not make) and keeps its
 * keys in a root-owned folder: one under /run, as sshd refuses keys below /tmp.
 */
export function startRelay(dir) {
  const relayDir = join(dir, 'relay');
  mkdirSync(join(relayDir, 'sshd_config.d'), { recursive: true });
  // A relay nobody set up yet: no account or keys of an earlier run.
  removeRelayUser();
  const keysDir = mkdtempSync('/run/aistudio-sim-relay-');
  chmodSync(keysDir, 0o755);
  const hostKey = join(relayDir, 'ssh_host_ed25519_key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  const config = join(relayDir, 'sshd_config');
  const pidFile = join(relayDir, 'sshd.pid');
  writeFileSync(config, `Include ${relayDir}/sshd_config.d/*.conf\nPort ${RELAY_PORT}\nListenAddress ${RELAY_ADDRESS}\n`
    + `HostKey ${hostKey}\nPidFile ${pidFile}\nUsePAM no\nPasswordAuthentication no\n`
    + 'KbdInteractiveAuthentication no\nAuthorizedKeysFile .ssh/authorized_keys\n');
  mkdirSync('/run/sshd', { recursive: true });
  execFileSync('/usr/sbin/sshd', ['-f', config, '-E', join(relayDir, 'sshd.log')]);
  return {
    host: RELAY_ADDRESS,
    port: RELAY_PORT,
    user: RELAY_USER,
    hostKey: readFileSync(`${hostKey}.pub`, 'utf8').trim(),
    /** Runs the relay setup script the extension printed, as its user would (as root). */
    setUp(script) {
      const scriptFile = join(relayDir, 'relay-setup.sh');
      writeFileSync(scriptFile, script, { mode: 0o700 });
      const run = spawnSync('bash', [scriptFile], {
        encoding: 'utf8',
        env: {
          ...process.env,
          AISTUDIO_SSH_SSHD_CONFIG: config,
          AISTUDIO_SSH_SSHD_DROPIN_DIR: join(relayDir, 'sshd_config.d'),
          AISTUDIO_SSH_RELAY_KEYS_DIR: join(keysDir, 'aistudio-ssh'),
          AISTUDIO_SSH_SSHD_RELOAD: `kill -HUP $(cat ${pidFile})`,
        },
      });
      if (run.status !== 0) throw new Error(`the relay setup script exited ${run.status}:\n${run.stderr}${run.stdout}`);
      return run.stdout;
    },
    log: () => readFileSync(join(relayDir, 'sshd.log'), 'utf8'),
    stop() {
      try { process.kill(Number(readFileSync(pidFile, 'utf8').trim()), 'SIGTERM'); } catch { /* already gone */ }
      // Tunnel sessions are children of the listener but outlive it; end them as a shutdown
      // would, and leave no account behind.
      removeRelayUser();
      rmSync(keysDir, { recursive: true, force: true });
    },
  };
}
