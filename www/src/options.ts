// Options page: what the extension is, and (as the product grows) the relay and project settings.
import { localizePage } from './i18n';
import { showVersions } from './versions';

async function render(): Promise<void> {
  localizePage();
  await showVersions();
  document.body.dataset.ready = 'true';
}

void render();
