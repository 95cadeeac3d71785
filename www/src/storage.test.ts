// The storage keys and the lock that orders changes.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSettingsKey, serialized, settingsKey, statusKey, tabKey, tabOfKey } from './storage';

test('keys name what they hold, and tab keys read back', () => {
  assert.equal(settingsKey('7892508'), 'project:7892508:settings');
  assert.equal(statusKey('7892508'), 'project:7892508:status');
  assert.equal(isSettingsKey(settingsKey('my-server')), true);
  assert.equal(isSettingsKey(statusKey('my-server')), false);
  assert.equal(tabOfKey(tabKey(42)), 42);
  assert.ok(Number.isNaN(tabOfKey(statusKey('42'))));
  assert.ok(Number.isNaN(tabOfKey('tab:x:notebook')));
});

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

test('changes under one name run one at a time, in order; a failure does not block the next', async () => {
  const log: string[] = [];
  const step = (name: string, fail = false) => async () => {
    log.push(`${name} starts`);
    await tick();
    log.push(`${name} ends`);
    if (fail) throw new Error(name);
    return name;
  };
  const first = serialized('project', step('first', true));
  const second = serialized('project', step('second'));
  await assert.rejects(first, { message: 'first' });
  assert.equal(await second, 'second');
  assert.deepEqual(log, ['first starts', 'first ends', 'second starts', 'second ends']);
});

test('changes under different names do not wait for each other', async () => {
  let release = () => {};
  const held = serialized('a', () => new Promise<void>((resolve) => { release = resolve; }));
  assert.equal(await serialized('b', async () => 'b ran'), 'b ran');
  release();
  await held;
});
