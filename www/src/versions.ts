// The version lines shown by the popup and the options page.
import { t } from './i18n';
import { ext } from './platform';
import { send } from './send';

function show(id: string, text: string): void {
  const element = document.getElementById(id);
  if (element) element.textContent = text;
}

/**
 * Fills `#version` (the manifest's) and `#core` (the wasm core's, through the background).
 * @returns whether the background and its core answered.
 */
export async function showVersions(): Promise<boolean> {
  show('version', t('versionLabel', ext.runtime.getManifest().version));
  try {
    const { coreVersion } = await send({ kind: 'coreInfo' });
    show('core', t('coreLabel', coreVersion));
    return true;
  } catch (error) {
    show('core', t('coreUnavailable', error instanceof Error ? error.message : String(error)));
    return false;
  }
}
