// A hidden frame of ours in the notebook tab (Chromium): it hands the content script's
// MessagePort to the background worker, after which the two exchange a link's bytes directly
// (binary, transferred) instead of as base64 JSON through the browser's runtime ports. A
// content script cannot reach the worker's `postMessage` itself; this page, of the
// extension's origin, can. It forwards the one port it is given and does nothing else: the
// worker takes it only with the nonce it gave the content script.
const forward = (event: MessageEvent): void => {
  const [port] = event.ports;
  if (!port || event.source !== window.parent) return;
  window.removeEventListener('message', forward);
  void navigator.serviceWorker.ready.then((registration) => registration.active?.postMessage(event.data, [port]));
};
window.addEventListener('message', forward);
