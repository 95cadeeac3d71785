// A hidden frame of ours in the notebook tab (Chromium): it hands the content script's
// MessagePort to the background worker, after which the two exchange a link's bytes directly
// (binary, transferred) instead of as base64 JSON through the browser's runtime ports. A
// content script cannot reach the worker's `postMessage` itself; this page, of the
// extension's origin, can. It forwards every port its parent page gives it (the page's own
// scripts post from the same window as the content script) and does nothing else: the worker
// takes a port only with the nonce it gave the content script, and closes the others.
window.addEventListener('message', (event: MessageEvent) => {
  const [port] = event.ports;
  if (!port || event.source !== window.parent) return;
  void navigator.serviceWorker.ready.then((registration) => registration.active?.postMessage(event.data, [port]));
});
