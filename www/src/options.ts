// Options page: the projects' keys (view, download, replace) and what the extension is.
import type {
  FieldError, KeyAlgorithm, ProjectKeysView, RelayInput, SelfHostedCheck, SelfHostedInput,
} from '../../build/wasm/aistudio_ssh.js';
import { download } from './download';
import { localizePage, t } from './i18n';
import type { ClientKeySource } from './messages';
import { ext } from './platform';
import { send } from './send';
import { act as actWithProgress } from './userAction';
import { showVersions } from './versions';

const projectsElement = () => document.getElementById('projects') as HTMLElement;
const act = (errorElement: HTMLElement, work: () => Promise<void>) => actWithProgress(errorElement, t('working'), work);
const input = (form: HTMLFormElement, name: string) => form.elements.namedItem(name) as HTMLInputElement;

/** Shows each invalid field's message under it (`[data-field]`); clears the others. */
function showFieldErrors(form: HTMLFormElement, errors: FieldError[]): void {
  for (const slot of form.querySelectorAll<HTMLElement>('[data-field]')) {
    const error = errors.find((e) => e.field === slot.dataset.field);
    // The core's English rule unless this language has its own words for it.
    const allowed = error ? ext.i18n.getMessage(`rule_${error.rule}`) || error.allowed : '';
    slot.textContent = error ? t('fieldError', [error.value, allowed]) : '';
  }
}

/** A port field's number; anything else becomes -1, which the core refuses with the rule for ports. */
const portValue = (text: string) => (/^\d+$/.test(text.trim()) ? Number(text.trim()) : -1);

async function renderRelay(): Promise<void> {
  const form = document.getElementById('relay-form') as HTMLFormElement;
  const saved = document.getElementById('relay-saved') as HTMLElement;
  const autoConnect = document.getElementById('auto-connect') as HTMLInputElement;
  const current = await send({ kind: 'relaySettings' });
  if (current.relay) {
    for (const name of ['host', 'port', 'user', 'hostKey'] as const) input(form, name).value = String(current.relay[name]);
  }
  autoConnect.checked = current.autoConnect;
  autoConnect.addEventListener('change', () => void send({ kind: 'setAutoConnect', autoConnect: autoConnect.checked }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const relay: RelayInput = {
      host: input(form, 'host').value.trim(),
      port: portValue(input(form, 'port').value),
      user: input(form, 'user').value.trim(),
      hostKey: input(form, 'hostKey').value.trim(),
    };
    delete saved.dataset.state;
    void act(saved, async () => {
      const errors = await send({ kind: 'saveRelay', relay });
      showFieldErrors(form, errors);
      if (errors.length === 0) {
        for (const article of projectsElement().querySelectorAll<HTMLElement>('[data-project]')) {
          await showProject(article.dataset.project ?? '');
        }
      }
      saved.dataset.state = errors.length === 0 ? 'saved' : 'invalid';
    }).then(() => {
      if (saved.dataset.state === 'saved') saved.textContent = t('savedLabel');
    });
  });
}

/** The self-hosted servers, each with its origin's state and a Remove button. */
async function renderSelfHostedList(): Promise<void> {
  const list = document.getElementById('self-hosted-list') as HTMLElement;
  const status = document.getElementById('self-hosted-status') as HTMLElement;
  list.replaceChildren();
  for (const server of await send({ kind: 'selfHostedServers' })) {
    const item = document.createElement('li');
    item.dataset.server = server.name;
    item.dataset.granted = String(server.granted);
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = t('removeButton');
    remove.addEventListener('click', () => void act(status, async () => {
      await send({ kind: 'removeSelfHosted', name: server.name });
      await renderSelfHostedList();
    }));
    const access = server.granted ? '' : ` ${t('selfHostedNotGranted')}`;
    item.append(`${server.hostAlias}: ${server.baseUrl} (${server.user})${access} `, remove);
    list.append(item);
  }
}

/**
 * The form that adds a self-hosted server. The browser asks the user for the server's origin,
 * which must happen inside the click: the core's verdict on what is typed is fetched as the
 * user types, so the click can ask at once (Firefox allows no wait before asking).
 */
function renderSelfHosted(): Promise<void> {
  const form = document.getElementById('self-hosted-form') as HTMLFormElement;
  const status = document.getElementById('self-hosted-status') as HTMLElement;
  const typed = (): SelfHostedInput => ({
    url: input(form, 'url').value, name: input(form, 'name').value, user: input(form, 'user').value,
  });
  let verdict: { key: string; check: Promise<SelfHostedCheck>; known?: SelfHostedCheck } | undefined;
  const check = () => {
    const key = JSON.stringify(typed());
    if (verdict?.key !== key) {
      const current: NonNullable<typeof verdict> = { key, check: send({ kind: 'checkSelfHosted', input: typed() }) };
      current.check.then((known) => { current.known = known; }, () => undefined);
      verdict = current;
    }
    return verdict;
  };
  form.addEventListener('input', () => void check());
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const { known, check: checking } = check();
    // Asked within the click when the verdict is in (the usual case), else right after it.
    const asked = known && 'server' in known ? ext.permissions.request({ origins: [known.server.originPattern] }) : undefined;
    delete status.dataset.state;
    let outcome = '';
    void act(status, async () => {
      const checked = await checking;
      showFieldErrors(form, 'errors' in checked ? checked.errors : []);
      if ('errors' in checked) return;
      // Without the verdict at the click, Firefox refuses to ask now; the next click will.
      const granted = await (asked ?? ext.permissions.request({ origins: [checked.server.originPattern] }))
        .catch(() => null);
      if (granted === null) {
        outcome = t('selfHostedAskAgain');
        return;
      }
      if (!granted) {
        status.dataset.state = 'refused';
        outcome = t('selfHostedRefused', checked.server.originPattern);
        return;
      }
      const errors = await send({ kind: 'addSelfHosted', input: typed() });
      showFieldErrors(form, errors);
      await renderSelfHostedList();
      if (errors.length > 0) return;
      await showProject(checked.server.name);
      status.dataset.state = 'added';
      outcome = t('selfHostedAdded', checked.server.baseUrl);
    }).then(() => {
      if (outcome) status.textContent = outcome;
    });
  });
  return renderSelfHostedList();
}

/** The project's own settings and its relay script (once there is a relay). */
async function renderProjectSettings(article: HTMLElement, projectId: string, error: HTMLElement): Promise<void> {
  const form = article.querySelector('form.project-settings') as HTMLFormElement;
  const settings = await send({ kind: 'projectSettings', projectId });
  const view = await send({ kind: 'projectView', projectId });
  const route = form.elements.namedItem('route') as HTMLSelectElement;
  route.value = settings.route ?? view.route ?? 'relay';
  input(form, 'remotePort').value = String(settings.remotePort);
  input(form, 'sshDir').value = settings.sshDir ?? '';
  input(form, 'sshDir').placeholder = `~/.ssh/aistudio-${projectId}`;
  input(form, 'containerUser').value = settings.containerUser ?? '';
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void act(error, async () => {
      const sshDir = input(form, 'sshDir').value.trim();
      const containerUser = input(form, 'containerUser').value.trim();
      const errors = await send({
        kind: 'saveProjectSettings', projectId,
        settings: {
          route: route.value === 'relay' ? 'relay' : 'direct',
          remotePort: portValue(input(form, 'remotePort').value),
          ...(sshDir ? { sshDir } : {}), ...(containerUser ? { containerUser } : {}),
        },
      });
      showFieldErrors(form, errors);
      if (errors.length === 0) await showProject(projectId);
    });
  });
  const script = article.querySelector('pre.script') as HTMLElement;
  const throughRelay = view.route === 'relay';
  (article.querySelector('details.relay-script') as HTMLElement).hidden = !throughRelay;
  (article.querySelector('button.bundle') as HTMLButtonElement).disabled = !view.route;
  if (throughRelay) script.textContent = await send({ kind: 'relayScript', projectId });
  article.querySelector('button.copy-script')?.addEventListener('click', () =>
    void act(error, () => navigator.clipboard.writeText(script.textContent ?? '')));
  article.querySelector('button.bundle')?.addEventListener('click', () => {
    const passphrase = input(article.querySelector('form.download') as HTMLFormElement, 'passphrase').value || undefined;
    void act(error, async () => download(await send({ kind: 'bundle', projectId, passphrase })));
  });
  // Its stored values are in and Save works (before, a click would submit the page itself).
  form.dataset.loaded = 'true';
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
    void replace({ kind: 'generate', algorithm: field(form('generate'), 'algorithm') as KeyAlgorithm });
  });
  form('paste').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = field(form('paste'), 'text');
    const passphrase = field(form('paste'), 'passphrase') || undefined;
    void replace({ kind: 'pasted', text, passphrase });
  });

  if (existing) existing.replaceWith(article);
  else projectsElement().append(article);
  void act(error, () => renderProjectSettings(article, view.projectId, error));
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
    await renderRelay();
    await renderSelfHosted();
    await act(keysError, async () => {
      for (const projectId of await send({ kind: 'listProjects' })) await showProject(projectId);
    });
  }
  document.body.dataset.ready = 'true';
}

void render();
