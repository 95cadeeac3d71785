// The request table's sender check, dispatch and envelopes; the real table's audiences are
// checked at compile time (tsc reads this file), its handlers by the end-to-end tests.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  BackgroundError, type RequestTable, type Sender, answer, enveloped, mayAsk, namedError, senderContext, unwrap,
} from './requestTable';
import type { REQUESTS, Reply, Request } from './requests';

const ID = 'our-extension-id';
const ORIGIN = `chrome-extension://${ID}/`;
const PAGE: Sender = { id: ID, url: `${ORIGIN}options.html` };
const CONTENT: Sender = { id: ID, url: 'https://aistudio.baidu.com/bj-cpu-01/user/1/2/lab', tab: { id: 7 } as chrome.tabs.Tab };

const table = {
  hello: { from: 'contentScripts', handle: ({ name }: { name: string }) => `hello ${name}` },
  secret: { from: 'extensionPages', handle: () => 'the key' },
  whereFrom: { from: 'contentScripts', handle: (_: object, sender: Sender) => sender.url },
  failing: { from: 'extensionPages', handle: () => { throw namedError('NoRelay', 'set up the relay first'); } },
} as const satisfies RequestTable;

const ready = Promise.resolve();

test('senders are told apart by the browser-set id and URL', () => {
  assert.equal(senderContext(PAGE, ID, ORIGIN), 'extensionPage');
  assert.equal(senderContext(CONTENT, ID, ORIGIN), 'contentScript');
  assert.equal(senderContext({ id: ID }, ID, ORIGIN), 'contentScript');
  assert.equal(senderContext({ id: 'another-extension', url: `${ORIGIN}options.html` }, ID, ORIGIN), null);
  assert.equal(senderContext({ url: `${ORIGIN}options.html` }, ID, ORIGIN), null);
  // Another extension's page is no page of ours.
  assert.equal(senderContext({ id: ID, url: 'chrome-extension://other/options.html' }, ID, ORIGIN), 'contentScript');
});

test('extension pages may ask every kind, content scripts only theirs', () => {
  for (const kind of ['hello', 'secret', 'whereFrom', 'failing', 'unknown']) assert.equal(mayAsk(table, kind, 'extensionPage'), true);
  assert.equal(mayAsk(table, 'hello', 'contentScript'), true);
  assert.equal(mayAsk(table, 'whereFrom', 'contentScript'), true);
  assert.equal(mayAsk(table, 'secret', 'contentScript'), false);
  assert.equal(mayAsk(table, 'failing', 'contentScript'), false);
  // Names every object has are no entries of the table.
  for (const kind of ['unknown', 'toString', '__proto__', 'constructor', 'hasOwnProperty', undefined, 3, null]) {
    assert.equal(mayAsk(table, kind, 'contentScript'), false, String(kind));
  }
});

test('a content script asking for a page-only kind is refused before anything runs', async () => {
  await assert.rejects(answer(table, { kind: 'secret' }, CONTENT, 'contentScript', ready), {
    name: 'Forbidden', message: 'secret is only answered to extension pages',
  });
  await assert.rejects(answer(table, { kind: 'toString' }, CONTENT, 'contentScript', ready), { name: 'Forbidden' });
});

test('known kinds are answered with the request and the sender; unknown ones are named', async () => {
  assert.equal(await answer(table, { kind: 'hello', name: 'x' }, CONTENT, 'contentScript', ready), 'hello x');
  assert.equal(await answer(table, { kind: 'secret' }, PAGE, 'extensionPage', ready), 'the key');
  assert.equal(await answer(table, { kind: 'whereFrom' }, CONTENT, 'contentScript', ready), CONTENT.url);
  for (const kind of ['unknown', 'toString', '__proto__']) {
    await assert.rejects(answer(table, { kind }, PAGE, 'extensionPage', ready), {
      name: 'UnknownRequest', message: `unknown request ${JSON.stringify(kind)}`,
    });
  }
  await assert.rejects(answer(table, null, PAGE, 'extensionPage', ready), { name: 'UnknownRequest' });
});

test('handlers wait for the core', async () => {
  let release = () => {};
  const core = new Promise<void>((resolve) => { release = resolve; });
  let ran = false;
  const waiting = { now: { from: 'contentScripts', handle: () => { ran = true; return 1; } } } as const satisfies RequestTable;
  const reply = answer(waiting, { kind: 'now' }, CONTENT, 'contentScript', core);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(ran, false);
  release();
  assert.equal(await reply, 1);
});

test('errors cross the envelope with their name', async () => {
  const failed = await enveloped(answer(table, { kind: 'failing' }, PAGE, 'extensionPage', ready));
  assert.deepEqual(failed, { ok: false, error: { name: 'NoRelay', message: 'set up the relay first' } });
  assert.throws(() => unwrap(failed, 'failing'), (error: unknown) =>
    error instanceof BackgroundError && error.name === 'NoRelay' && error.message === 'set up the relay first');
  assert.deepEqual(await enveloped(Promise.reject(new Error('plain'))), { ok: false, error: { name: 'Error', message: 'plain' } });
  assert.deepEqual(await enveloped(Promise.reject('text')), { ok: false, error: { name: 'Error', message: 'text' } });
  const answered = await enveloped(answer(table, { kind: 'hello', name: 'y' }, CONTENT, 'contentScript', ready));
  assert.deepEqual(answered, { ok: true, value: 'hello y' });
  assert.equal(unwrap(answered, 'hello'), 'hello y');
  assert.throws(() => unwrap(undefined, 'hello'), { name: 'NoReply', message: 'no reply to hello' });
});

// The real table, at compile time: which kinds content scripts may send (keys and settings
// are for extension pages only; tests/key-storage.test.mjs checks in a browser that a content
// script's projectKeys request is refused).
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;
type ContentScriptKind = {
  [K in keyof typeof REQUESTS]: (typeof REQUESTS)[K]['from'] extends 'contentScripts' ? K : never;
}[keyof typeof REQUESTS];
const contentScriptKinds: Equal<ContentScriptKind,
  | 'coreInfo' | 'pageOpened' | 'jupyterReady' | 'connectionEvent' | 'probed' | 'classifyAnswer' | 'executeRequest'
  | 'kernelMessage' | 'terminalInput' | 'terminalResumeAt' | 'terminalOutput'> = true;
// Requests and replies follow from the table.
// @ts-expect-error: saveRelay needs a relay
const incomplete: Request = { kind: 'saveRelay' };
// @ts-expect-error: no such kind
const unknownKind: Request = { kind: 'unknown' };
const noProject: Reply<'removeSelfHosted'> = null;

test('the compile-time checks above compiled', () => {
  assert.equal(contentScriptKinds, true);
  assert.ok(incomplete && unknownKind && noProject === null);
});
