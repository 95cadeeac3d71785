// The pure parts of the Jupyter client: which `_xsrf` cookie to send first.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cookieValues, xsrfCandidates } from './jupyterServer';

test('cookie values are read by exact name, in the order the browser lists them', () => {
  assert.deepEqual(cookieValues('', '_xsrf'), []);
  assert.deepEqual(cookieValues('_xsrf=a', '_xsrf'), ['a']);
  assert.deepEqual(cookieValues('_xsrf_other=x; _xsrf=a|b=c; x_xsrf=y; _xsrf=d', '_xsrf'), ['a|b=c', 'd']);
});

test('the last _xsrf the browser sends (the one Tornado keeps) is tried first, each once', () => {
  assert.deepEqual(xsrfCandidates(''), []);
  assert.deepEqual(xsrfCandidates('lang=zh; _xsrf=jupyter'), ['jupyter']);
  // Jupyter's on the base path is listed before the site's on `/` (longest path first).
  assert.deepEqual(xsrfCandidates('_xsrf=jupyter; lang=zh; _xsrf=site'), ['site', 'jupyter']);
  assert.deepEqual(xsrfCandidates('_xsrf=same; _xsrf=same'), ['same']);
});
