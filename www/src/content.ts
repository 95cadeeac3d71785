// Content script on AI Studio pages (every frame). Thin: it tells the background which
// frame it runs in; the Rust core decides whether that is a notebook. No wasm here: a
// page's CSP may forbid it.
import { send } from './messages';

send({ kind: 'pageOpened' }).catch((error: unknown) => {
  console.warn('AI Studio SSH: the extension background did not answer', error);
});
