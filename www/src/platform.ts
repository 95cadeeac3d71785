// The one place that papers over `chrome` (Chromium) vs `browser` (Firefox).

/**
 * The WebExtension API. Firefox's `browser` and Chromium's MV3 `chrome` both return
 * promises, so one typing serves both.
 */
export const ext: typeof chrome =
  (globalThis as unknown as { browser?: typeof chrome }).browser ?? globalThis.chrome;

/**
 * Puts storage.local (settings, status) out of content scripts' reach where the browser can:
 * Chromium's `setAccessLevel` on the local area, kept in the extension's prefs across
 * restarts. Firefox supports it on storage.session only and refuses it here (ignored): its
 * answer is that keys live in the extension's IndexedDB, which content scripts cannot reach.
 */
export async function keepStorageFromContentScripts(): Promise<void> {
  try {
    await ext.storage.local.setAccessLevel?.({ accessLevel: 'TRUSTED_CONTEXTS' });
  } catch {
    // Firefox, or a Chromium without it: nothing more this browser can do.
  }
}
