// The one place that papers over `chrome` (Chromium) vs `browser` (Firefox).

/**
 * The WebExtension API. Firefox's `browser` and Chromium's MV3 `chrome` both return
 * promises, so one typing serves both.
 */
export const ext: typeof chrome =
  (globalThis as unknown as { browser?: typeof chrome }).browser ?? globalThis.chrome;
