// User story: my keys are made in my browser, survive a browser restart, and what I
// download is what OpenSSH reads.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { newProfileDir, openExtensionPage, withExtension } from '../testbed/harness/browser.mjs';

const PROJECT = '7892508';
const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43} \((ssh-ed25519|ssh-rsa), (256|2048|3072|4096)\)/;

const project = (page) => page.locator(`article[data-project="${PROJECT}"]`);
const keyText = (page, role) => project(page).locator(`dd[data-key="${role}"]`).textContent();
const fingerprints = async (page) => Promise.all(['client', 'containerRelay', 'containerHost'].map((r) => keyText(page, r)));
/** Waits until the project's error line is empty again after an action (it shows progress meanwhile). */
const settled = (page) => page.waitForFunction(
  (id) => document.querySelector(`article[data-project="${id}"] p.error`)?.textContent === '', PROJECT);

async function downloadClientKey(page, dir, passphrase = '') {
  await project(page).locator('form.download input[name=passphrase]').fill(passphrase);
  const bothFiles = new Promise((resolve) => {
    const downloads = [];
    const collect = (download) => {
      downloads.push(download);
      if (downloads.length === 2) { page.off('download', collect); resolve(downloads); }
    };
    page.on('download', collect);
  });
  await project(page).locator('form.download button').click();
  const downloads = await bothFiles;
  const paths = {};
  for (const download of downloads) {
    paths[download.suggestedFilename()] = join(dir, download.suggestedFilename());
    await download.saveAs(paths[download.suggestedFilename()]);
  }
  chmodSync(paths.id_aistudio, 0o600);
  return paths;
}

test('keys are made in the browser, download as OpenSSH reads them, and survive a restart', async (t) => {
  const profile = newProfileDir();
  const dir = mkdtempSync(join(tmpdir(), 'aistudio-ssh-keys-'));
  t.after(() => { rmSync(profile, { recursive: true, force: true }); rmSync(dir, { recursive: true, force: true }); });

  let before;
  await withExtension(t, { profile }, async (browser) => {
    const options = await openExtensionPage(browser, 'options.html');
    await options.fill('#add-project input[name=projectId]', PROJECT);
    await options.click('#add-project button');
    await project(options).waitFor();
    before = await fingerprints(options);
    for (const line of before) assert.match(line, FINGERPRINT);
    assert.equal(new Set(before).size, 3, 'three different keys');

    // The downloaded pair: ssh-keygen derives the public key and prints the shown fingerprint.
    const plain = await downloadClientKey(options, dir);
    const derived = execFileSync('ssh-keygen', ['-y', '-f', plain.id_aistudio], { encoding: 'utf8' });
    assert.equal(derived.split(' ').slice(0, 2).join(' '), readFileSync(plain['id_aistudio.pub'], 'utf8').split(' ').slice(0, 2).join(' '));
    const listed = execFileSync('ssh-keygen', ['-l', '-f', plain['id_aistudio.pub']], { encoding: 'utf8' });
    assert.ok(before[0].startsWith(listed.split(' ')[1]), `${listed} vs ${before[0]}`);

    // With a passphrase: only that passphrase opens it.
    const locked = await downloadClientKey(options, dir, 'tunnel vision 隧道');
    assert.throws(() => execFileSync('ssh-keygen', ['-y', '-P', '', '-f', locked.id_aistudio], { stdio: 'pipe' }));
    const unlocked = execFileSync('ssh-keygen', ['-y', '-P', 'tunnel vision 隧道', '-f', locked.id_aistudio], { encoding: 'utf8' });
    assert.equal(unlocked.split(' ')[1], derived.split(' ')[1]);

    // An RSA-3072 client key through WebCrypto, by the user's explicit choice.
    await project(options).locator('details.replace summary').click();
    await project(options).locator('form.generate select').selectOption('rsa-3072');
    await project(options).locator('form.generate button').click();
    await options.waitForFunction((id) =>
      document.querySelector(`article[data-project="${id}"] dd[data-key=client]`)?.textContent?.includes('ssh-rsa, 3072'), PROJECT);
    const afterRsa = await fingerprints(options);
    assert.notEqual(afterRsa[0], before[0]);
    assert.deepEqual(afterRsa.slice(1), before.slice(1), 'the container keys did not change');
    before = afterRsa;

    // Bad input is refused with the reason, and nothing changes.
    const putty = project(options).locator('form.paste');
    await project(options).locator('details.replace').evaluate((d) => { d.open = true; });
    await putty.locator('textarea').fill('PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n');
    await putty.locator('button').click();
    await options.waitForFunction((id) =>
      document.querySelector(`article[data-project="${id}"] p.error`)?.textContent?.includes('PuTTYgen'), PROJECT);
    assert.deepEqual(await fingerprints(options), before);

    // The user's own public key (an authorized_keys line with options): kept public only.
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'me@laptop', '-f', join(dir, 'mine')]);
    const mine = readFileSync(join(dir, 'mine.pub'), 'utf8');
    const mineFingerprint = execFileSync('ssh-keygen', ['-l', '-f', join(dir, 'mine.pub')], { encoding: 'utf8' }).split(' ')[1];
    await putty.locator('textarea').fill(`no-pty,command="echo hi there" ${mine}`);
    await putty.locator('button').click();
    await options.waitForFunction(([id, fingerprint]) =>
      document.querySelector(`article[data-project="${id}"] dd[data-key=client]`)?.textContent?.startsWith(fingerprint),
      [PROJECT, mineFingerprint]);
    assert.match(await keyText(options, 'client'), /private key stays on your computer/);
    before = await fingerprints(options);
  });

  // A new browser process on the same profile: the same keys, none made again.
  await withExtension(t, { profile }, async (browser) => {
    const options = await openExtensionPage(browser, 'options.html');
    await project(options).waitFor();
    await settled(options);
    assert.deepEqual(await fingerprints(options), before);
  });
});
