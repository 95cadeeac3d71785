// User story: on Windows, ssh's ProxyCommand reaches my notebook through the helper the
// browser started. The cross-built helper under Wine plays every Windows part (native host,
// its keeper, `proxy`); this test plays the browser's extension over native messaging (no
// lane) and carries the link to the real bridge.py in front of an echo server for sshd.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../project.mjs';
import { eventually } from '../testbed/harness/browser.mjs';
import { winePrefix } from '../testbed/harness/wine.mjs';

const PROJECT = '7892508';
const ALIAS = `aistudio-${PROJECT}`;
const BRIDGE = join(ROOT, 'crate', 'src', 'scripts', 'bridge.py');

/** Native messaging's framing: a 32-bit little-endian length, then JSON. */
function writeMessage(stream, message) {
  const body = Buffer.from(JSON.stringify(message));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(body.length);
  stream.write(Buffer.concat([length, body]));
}

function onMessages(stream, handle) {
  let pending = Buffer.alloc(0);
  stream.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32LE(0)) {
      const length = pending.readUInt32LE(0);
      handle(JSON.parse(pending.subarray(4, 4 + length).toString()));
      pending = pending.subarray(4 + length);
    }
  });
}

/** Runs a child to its end: { status, stdout (Buffer), stderr }. */
function finished(child) {
  const out = [];
  let stderr = '';
  child.stdout.on('data', (chunk) => out.push(chunk));
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout: Buffer.concat(out), stderr })));
}

test('Windows: proxy -> keeper -> native host carries a stream to the bridge and back', async (t) => {
  const wine = winePrefix();
  const echo = createServer((socket) => socket.pipe(socket));
  await new Promise((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const children = [];
  t.after(() => {
    for (const child of children) child.kill();
    echo.close();
    wine.stop();
  });
  const env = { AISTUDIO_SSH_LANE: 'off' };
  const folder = join(wine.localAppData, 'aistudio-ssh');

  // No browser has started the helper: proxy says so at once.
  const alone = await finished(wine.spawnHelper(['proxy', ALIAS], env));
  assert.equal(alone.status, 255);
  assert.match(alone.stderr, /the helper is not running: open your browser/);

  // A keeper died and another program took its port: it echoes the client's token back, but
  // does not know the keeper's, and proxy tells it apart.
  const impostor = createServer((socket) => socket.once('data', (line) => socket.write(line)));
  await new Promise((resolve) => impostor.listen(0, '127.0.0.1', resolve));
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'helper.address'), `${impostor.address().port} ${'a'.repeat(64)} ${'b'.repeat(64)}\n`);
  const fooled = await finished(wine.spawnHelper(['proxy', ALIAS], env));
  impostor.close();
  assert.equal(fooled.status, 255);
  assert.match(fooled.stderr, /is not this user's keeper/);

  /**
   * The browser: Chrome starts the native host with the caller's origin and its window, and
   * the extension says hello; the test answers `want` as the extension would.
   */
  const startBrowser = async () => {
    const host = wine.spawnHelper(['chrome-extension://nfbfpekjfcnniobpegkajkakabpienla/', '--parent-window=0'], env);
    children.push(host);
    const seen = { hello: null, wants: 0, drops: 0 };
    let bridge = null;
    onMessages(host.stdout, (message) => {
      switch (message.kind) {
        case 'hello': seen.hello = message; break;
        case 'want': {
          // The extension opens the link: here a bridge of its own on stdio, as the kernel's
          // comm would reach the container's.
          seen.wants += 1;
          bridge = spawn('python3', [BRIDGE, '--sshd-port', String(echo.address().port)], { stdio: ['pipe', 'pipe', 'inherit'] });
          children.push(bridge);
          bridge.stdout.on('data', (chunk) => writeMessage(host.stdin, { kind: 'bytes', project: PROJECT, data: chunk.toString('base64') }));
          writeMessage(host.stdin, { kind: 'linkUp', project: PROJECT, link: 1 });
          break;
        }
        case 'bytes':
          assert.equal(message.link, 1);
          bridge.stdin.write(Buffer.from(message.data, 'base64'));
          break;
        case 'drop': seen.drops += 1; break;
        case 'status': break;
        default: assert.fail(`the host sent ${JSON.stringify(message)}`);
      }
    });
    writeMessage(host.stdin, { kind: 'hello' });
    await eventually(async () => seen.hello, Boolean, { what: 'the native host answers hello', timeoutMs: 30_000 });
    return { host, seen };
  };

  // The host starts the keeper, which replaces the stale address, and answers hello.
  const { host, seen } = await startBrowser();
  assert.equal(seen.hello.host, 'io.github.aistudio_ssh');
  assert.equal(seen.hello.lane, null);

  // The keeper's address: a loopback port and two tokens, in the user's profile.
  const [port, clientToken, keeperToken] = readFileSync(join(folder, 'helper.address'), 'utf8').trim().split(' ');
  assert.match(clientToken, /^[0-9a-f]{64}$/);
  assert.match(keeperToken, /^[0-9a-f]{64}$/);
  assert.notEqual(clientToken, 'a'.repeat(64));
  const keeperPid = readFileSync(join(folder, 'keeper.pid'), 'utf8').trim();
  assert.match(keeperPid, /^\d+$/);

  // Another program on this machine without the token gets nothing, not even an answer.
  const stranger = createConnection(Number(port), '127.0.0.1');
  let heard = '';
  stranger.on('data', (chunk) => { heard += chunk; });
  stranger.write(`${'0'.repeat(64)}\n${JSON.stringify({ project: PROJECT })}\n`);
  const closed = await Promise.race([
    new Promise((resolve) => { stranger.on('close', () => resolve(true)); stranger.on('error', () => resolve(true)); }),
    new Promise((resolve) => setTimeout(() => resolve(false), 5000)),
  ]);
  stranger.destroy();
  assert.equal(heard, '');
  assert.ok(closed, 'the keeper closes a connection without the token');

  // ssh's bytes through proxy, keeper, native host, "extension", bridge, echo, and back.
  const sent = randomBytes(2 * 1024 * 1024);
  const proxy = wine.spawnHelper(['proxy', ALIAS], env);
  children.push(proxy);
  const result = finished(proxy);
  proxy.stdin.end(sent);
  const { status, stdout, stderr } = await result;
  assert.equal(status, 0, stderr);
  assert.equal(stdout.length, sent.length);
  assert.ok(stdout.equals(sent), 'the echo is what was sent');
  assert.equal(seen.wants, 1);
  assert.equal(seen.drops, 0);

  // The browser goes: the native host ends, and the keeper leaves with its address file.
  host.stdin.end();
  await eventually(async () => host.exitCode !== null, Boolean, { what: 'the native host ends', timeoutMs: 10_000 });
  assert.equal(host.exitCode, 0);
  await eventually(async () => !existsSync(join(folder, 'helper.address')) && !existsSync(join(folder, 'keeper.pid')), Boolean, { what: 'the keeper leaves', timeoutMs: 10_000 });

  // The browser again, and it goes while an ssh session is open: the browser sees its pipe
  // close (the keeper, which stays for the session, holds none of it).
  const again = await startBrowser();
  const session = wine.spawnHelper(['proxy', ALIAS], env);
  children.push(session);
  session.stdin.write('still here');
  let echoed = '';
  session.stdout.on('data', (chunk) => { echoed += chunk; });
  await eventually(async () => echoed === 'still here', Boolean, { what: 'the session echoes', timeoutMs: 10_000 });
  let pipeClosed = false;
  again.host.stdout.on('close', () => { pipeClosed = true; });
  again.host.stdin.end();
  await eventually(async () => pipeClosed && again.host.exitCode !== null, Boolean, { what: 'the browser sees the native host end', timeoutMs: 5000 });
  assert.equal(again.host.exitCode, 0);
  assert.ok(existsSync(join(folder, 'keeper.pid')), 'the keeper stays for the open session');
  // (Its stream waits out the grace for a browser to come back; the prefix's end stops it.)
});
