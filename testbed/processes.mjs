// Ports and process groups of what the testbed starts: the simulator's servers, the browsers.
import net from 'node:net';

/** A TCP port on loopback nobody listens on now. */
export const freePort = () => new Promise((resolve, reject) => {
  const server = net.createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    server.close(() => resolve(port));
  }).on('error', reject);
});

/** SIGTERM to a process group, then SIGKILL whatever of it is left after 10 s. */
export async function stopProcessGroup(pgid) {
  const alive = () => { try { process.kill(-pgid, 0); return true; } catch { return false; } };
  try { process.kill(-pgid, 'SIGTERM'); } catch { return; }
  for (let waited = 0; alive() && waited < 10_000; waited += 100) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (alive()) process.kill(-pgid, 'SIGKILL');
}
