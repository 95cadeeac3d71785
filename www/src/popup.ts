// Toolbar popup: the state of the active tab's notebook, and the versions.
import { t, localizePage } from './i18n';
import { send } from './messages';
import { ext } from './platform';
import { showVersions } from './versions';

async function showTabStatus(): Promise<void> {
  const status = document.getElementById('status');
  if (!status) return;
  const [tab] = await ext.tabs.query({ active: true, currentWindow: true });
  const notebook = tab?.id === undefined ? null : await send({ kind: 'tabNotebook', tabId: tab.id });
  status.textContent = notebook ? t('notebookFound', [notebook.projectId, notebook.zone]) : t('noNotebook');
}

async function render(): Promise<void> {
  localizePage();
  if (await showVersions()) await showTabStatus();
  document.body.dataset.ready = 'true';
}

void render();
