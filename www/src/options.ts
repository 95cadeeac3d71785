// Options page: the projects' keys (view, download, replace) and what the extension is.
import { localizePage, t } from './i18n';
import { type ClientKeySource, type KeyAlgorithmName, type KeyFile, type ProjectKeysView, send } from './messages';
import { showVersions } from './versions';

const projectsElement = () => document.getElementById('projects') as HTMLElement;
const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Saves files through blob links: no downloads permission needed. */
function download(files: KeyFile[]): void {
  for (const file of files) {
    const url = URL.createObjectURL(new Blob([file.text], { type: 'application/octet-stream' }));
    const link = Object.assign(document.createElement('a'), { href: url, download: file.name });
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
}

/** Runs a user action with progress shown and its error, if any, shown in `errorElement`. */
async function act(errorElement: HTMLElement, work: () => Promise<void>): Promise<void> {
  errorElement.textContent = t('working');
  try {
    await work();
    errorElement.textContent = '';
  } catch (error) {
    errorElement.textContent = messageOf(error);
  }
}

function renderProject(view: ProjectKeysView): void {
  const template = document.getElementById('project-template') as HTMLTemplateElement;
  const existing = projectsElement().querySelector<HTMLElement>(`[data-project="${CSS.escape(view.projectId)}"]`);
  const article = (template.content.firstElementChild as HTMLElement).cloneNode(true) as HTMLElement;
  article.dataset.project = view.projectId;
  localizePage(article);
  (article.querySelector('h3') as HTMLElement).textContent = t('projectHeading', view.projectId);
  for (const dd of article.querySelectorAll<HTMLElement>('dd[data-key]')) {
    const key = view[dd.dataset.key as 'client' | 'containerRelay' | 'containerHost'];
    dd.textContent = key ? `${key.fingerprint} (${key.algorithm}, ${key.bits})` : '—';
    if (key && !key.hasPrivateKey) dd.append(` ${t('publicOnly')}`);
  }
  const error = article.querySelector('p.error') as HTMLElement;
  const form = (name: string) => article.querySelector(`form.${name}`) as HTMLFormElement;
  const field = (f: HTMLFormElement, name: string) => (f.elements.namedItem(name) as HTMLInputElement).value;
  const replace = (source: ClientKeySource) =>
    act(error, async () => renderProject(await send({ kind: 'replaceClientKey', projectId: view.projectId, source })));

  form('download').addEventListener('submit', (event) => {
    event.preventDefault();
    const passphrase = field(form('download'), 'passphrase') || undefined;
    void act(error, async () => download(await send({ kind: 'exportClientKey', projectId: view.projectId, passphrase })));
  });
  form('generate').addEventListener('submit', (event) => {
    event.preventDefault();
    void replace({ kind: 'generate', algorithm: field(form('generate'), 'algorithm') as KeyAlgorithmName });
  });
  form('paste').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = field(form('paste'), 'text');
    const passphrase = field(form('paste'), 'passphrase') || undefined;
    void replace({ kind: 'pasted', text, passphrase });
  });

  if (existing) existing.replaceWith(article);
  else projectsElement().append(article);
}

async function showProject(projectId: string): Promise<void> {
  renderProject(await send({ kind: 'projectKeys', projectId }));
}

async function render(): Promise<void> {
  localizePage();
  const addForm = document.getElementById('add-project') as HTMLFormElement;
  const keysError = document.getElementById('keys-error') as HTMLElement;
  addForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const projectId = (addForm.elements.namedItem('projectId') as HTMLInputElement).value.trim();
    void act(keysError, () => showProject(projectId));
  });
  if (await showVersions()) {
    await act(keysError, async () => {
      for (const projectId of await send({ kind: 'listProjects' })) await showProject(projectId);
    });
  }
  document.body.dataset.ready = 'true';
}

void render();
