// Toolbar popup: the active tab's project, its connection state and environment, and
// the user's actions (connect, disconnect, copy the ssh command, download the bundle).
import type { ProjectStatus, ProjectView } from '../../build/wasm/aistudio_ssh.js';
import { download } from './download';
import { t, localizePage } from './i18n';
import type { TabNotebook } from './messages';
import { ext } from './platform';
import type { Reply } from './requests';
import { send } from './send';
import { statusKey, tabKey } from './storage';
import { act } from './userAction';
import { showVersions } from './versions';

const element = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

/** The state in words: the phase, and the step while cells run. */
function phaseText(status: ProjectStatus | null, ready: boolean): string {
  if (!ready) return t('phase_notSetUp');
  if (!status) return t('phase_ready');
  if (status.phase === 'running' && status.step) return t('phase_running', t(`step_${status.step}`));
  return t(`phase_${status.phase}`);
}

function environmentText(status: ProjectStatus | null): string {
  const environment = status?.environment;
  if (!environment) return '';
  const device = environment.device ?? environment.kind;
  const kind = environment.kind === 'cpu' ? t('environmentCpu')
    : environment.kind === 'dcu' ? t('environmentDcu', device) : t('environmentGpu', device);
  return t('environmentLine', [kind, environment.hostname]);
}

/** Direct route: whether the helper answers (if not, the command that installs it), and the link. */
function showHelper(view: ProjectView, helper: Reply<'helperStatus'> | null): void {
  element('helper').hidden = view.route !== 'direct' || !helper;
  if (view.route !== 'direct' || !helper) return;
  element('route').textContent = t('routeDirectShort');
  const state = helper.helper;
  element('helper-state').textContent = state.state === 'running' ? t('helperRunning', state.version)
    : state.state === 'missing' ? t('helperMissing')
      : state.state === 'exited' ? t('helperExited', state.error)
        : t('helperChecking');
  element('helper-state').dataset.helper = state.state;
  element('helper-install').hidden = state.state !== 'missing';
  const link = helper.link;
  element('link-stats').textContent = link
    ? t('linkStats', [String(link.streams), megabytes(link.bytesUp), megabytes(link.bytesDown)])
    : '';
}

const megabytes = (bytes: number) => (bytes / 1e6).toFixed(1);

function show(view: ProjectView, helper: Reply<'helperStatus'> | null): void {
  const { status } = view;
  const ready = view.route !== undefined && view.route !== null;
  element('phase').textContent = phaseText(status, ready);
  element('phase').dataset.phase = ready ? status?.phase ?? 'ready' : 'notSetUp';
  showHelper(view, helper);
  const change = status?.change ? `${t(`change_${status.change}`)} ` : '';
  element('reason').textContent = `${change}${status?.reason ?? ''}`;
  element('environment').textContent = environmentText(status);
  element('command').textContent = view.command;
  const running = status?.phase === 'running';
  element<HTMLButtonElement>('connect').disabled = !ready || running;
  element<HTMLButtonElement>('disconnect').disabled = !ready || running || status?.phase === 'disconnected';
  element<HTMLButtonElement>('bundle').disabled = !ready;
  element('download-notebook').hidden = !view.offerNotebookDownload;
  element('options-link').hidden = ready;
}

async function showProject(tabId: number, notebook: TabNotebook): Promise<void> {
  element('project').hidden = false;
  const errorElement = element('popup-error');
  const refresh = async () => show(
    await send({ kind: 'projectView', projectId: notebook.projectId }),
    await send({ kind: 'helperStatus', projectId: notebook.projectId }).catch(() => null),
  );
  const onClick = (id: string, work: () => Promise<unknown>) =>
    element(id).addEventListener('click', () => void act(errorElement, t('working'), async () => { await work(); await refresh(); }));
  onClick('connect', () => send({ kind: 'connect', tabId }));
  onClick('disconnect', () => send({ kind: 'disconnect', tabId }));
  onClick('copy', () => navigator.clipboard.writeText(element('command').textContent ?? ''));
  element('bundle-note').textContent = t('bundleKeyNote', notebook.projectId);
  onClick('bundle', async () => download(await send({
    kind: 'bundle', projectId: notebook.projectId, passphrase: element<HTMLInputElement>('bundle-passphrase').value || undefined,
  })));
  onClick('download-notebook', async () => download(await send({ kind: 'companionNotebook', projectId: notebook.projectId })));
  onClick('open-cells', async () => {
    const { notebookPath } = await send({ kind: 'projectView', projectId: notebook.projectId });
    await ext.tabs.create({ url: `${notebook.baseUrl}lab/tree/${notebookPath}` });
  });
  // The status changes as the content script reports; follow it while the popup is open.
  ext.storage.onChanged.addListener((changes, area) => {
    if (area === 'local' && changes[statusKey(notebook.projectId)]) void refresh();
  });
  // The helper's counts change without a storage event.
  setInterval(() => void refresh(), 2000);
  await refresh();
}

/** The tab the popup is about: the active one, or `?tab=<id>` when the popup is opened as a page. */
async function notebookTab(): Promise<number | undefined> {
  const asked = Number(new URLSearchParams(location.search).get('tab'));
  if (Number.isInteger(asked) && asked > 0) return asked;
  const [tab] = await ext.tabs.query({ active: true, currentWindow: true });
  return tab?.id;
}

async function showTabStatus(): Promise<void> {
  const tabId = await notebookTab();
  if (tabId === undefined) {
    element('status').textContent = t('noNotebook');
    return;
  }
  let shown = false;
  const update = async () => {
    const notebook = await send({ kind: 'tabNotebook', tabId });
    if (shown) return;
    element('status').textContent = notebook ? t('notebookFound', [notebook.projectId, notebook.zone]) : t('noNotebook');
    if (!notebook) return;
    shown = true;
    await showProject(tabId, notebook);
  };
  // Opened while the page still loads: its notebook shows up as soon as the page reports it.
  ext.storage.onChanged.addListener((changes, area) => {
    if (area === 'session' && changes[tabKey(tabId)]) void update();
  });
  await update();
}

async function render(): Promise<void> {
  localizePage();
  if (await showVersions()) await showTabStatus();
  document.body.dataset.ready = 'true';
}

void render();
