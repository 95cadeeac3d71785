// Direct mode in the background: the port to the helper on the user's computer (the native
// messaging host `aistudio-ssh native-host`) and, per project, the carrier in the notebook tab
// that takes the helper's bytes to the container's bridge. The worker only forwards: the
// stream protocol runs end to end between the helper and the bridge, and the core says what
// each kernel frame means.
import {
  carrierAttachment, carrierBytesIn, laneHeader, loadsPortBroker, maxLaneHeader, readCarrierText, readLaneHeader,
} from '../../build/wasm/aistudio_ssh.js';
import type { Attachment, ToExtension, ToHost } from '../../build/wasm/aistudio_ssh.js';
import {
  CARRIER_PORT, HELPER_HOST_NAME, type CarrierOrder, type CarrierReport, type HelperStatus, type LinkStats,
  type TabNotebook,
} from './messages';
import { fromBase64, toBase64 } from './base64';
import { ext } from './platform';
import { withRendered } from './settings';
import { allTabNotebooks } from './storage';

/** After a leg dropped, the next attachment is tried this much later. */
const REATTACH_MS = 1000;
/**
 * How long a link that lost its tab (a reload) is looked for again: the helper keeps its
 * streams this long (the stream protocol's grace) waiting for the link to come back.
 */
const REOPEN_FOR_MS = 120_000;
const REOPEN_EVERY_MS = 1000;
/** After a running helper's port closed, it is started again this much later. */
const RESTART_HELPER_MS = 2000;
/**
 * Whether this background can take a carrier's MessagePort: a service worker (Chromium) can
 * be posted to by our frame; Firefox's event page cannot.
 */
export const TAKES_CARRIER_PORTS = 'ServiceWorkerGlobalScope' in globalThis;
/** How long a new link waits for its carrier's MessagePort before it attaches without one. */
const PORT_WAIT_MS = 3000;
/** After an open lane closed, the helper is asked for it again this much later, this often. */
const REOPEN_LANE_MS = 1000;
const LANE_REOPENS = 3;

/** One project's link: the carrier port into its notebook tab and the current attachment. */
interface Link {
  port: chrome.runtime.Port;
  attachment: Attachment | null;
  /** The number of the attachment's `linkUp`: the helper's bytes name the one they are for. */
  number: number;
  up: boolean;
  /** Whether the bridge answered on this attachment (a refusal before that ends the link). */
  heard: boolean;
  attachCode: string;
  /** Whether its `linkUp` went on the lane: the link's messages stay on the way it took. */
  viaLane: boolean;
  /**
   * The carrier's MessagePort (Chromium), once it came: orders and reports cross there, bytes
   * as they are; else on the runtime port, bytes as base64 (JSON only).
   */
  direct: MessagePort | null;
}

let helper: chrome.runtime.Port | null = null;
/**
 * The helper's lane, from the moment it is opened: a WebSocket on loopback that the helper
 * offers in its `hello`, where a link's bytes cross as binary frames instead of base64 in
 * native messages (which browsers read slowly). Native messaging still starts the helper and
 * keeps this worker alive. Without the lane, everything goes over native messaging.
 */
let lane: WebSocket | null = null;
/**
 * Per project: whether its last `linkUp` went on the lane. The helper hears a project's
 * messages from the way its link came up while that way is open, else from the newest
 * (`Routes` in the core); this mirrors it, so a refusal is heard.
 */
const linkOwners = new Map<string, boolean>();
/** The way the helper hears `projectId`'s messages on (true: the lane). */
const askedViaLane = (projectId: string): boolean => linkOwners.get(projectId) ?? laneOpen();
/** Times the lane was asked for again since the helper started. */
let laneReopens = 0;
const laneOpen = (): boolean => lane?.readyState === WebSocket.OPEN;
/** Carriers asked for a MessagePort, by the nonce they were given: who takes it. */
const offeredPorts = new Map<string, (port: MessagePort | null) => void>();
/** Per project: the header of its binary frames on the lane. */
const laneHeaders = new Map<string, Uint8Array>();
let status: HelperStatus = { state: 'unknown' };
const links = new Map<string, Link>();
/** Projects whose tab went away while their link was up: until when to look for it again. */
const reopening = new Map<string, number>();
let reopenTimer: ReturnType<typeof setInterval> | undefined;
const stats = new Map<string, LinkStats>();
/** Per project: the last `linkUp` number (never reused while the worker lives). */
const linkNumbers = new Map<string, number>();
/** Per project: the carrier's last kernel, which a reloaded page's carrier shuts down. */
const carrierKernels = new Map<string, string>();

/**
 * Tells the helper: on the lane while it is open, or on the way `viaLane` says (a link's, or
 * the way the helper hears its project on); natively once the lane closed, where the helper
 * then hears of the link.
 */
function tell(message: ToHost, viaLane = laneOpen()): void {
  if (viaLane && lane && laneOpen()) lane.send(JSON.stringify(message));
  else helper?.postMessage(message);
}

/** Bytes from the bridge to the helper. */
function tellBytes(projectId: string, link: Link, bytes: Uint8Array): void {
  if (!link.viaLane) return tell({ kind: 'bytes', project: projectId, data: toBase64(bytes) }, false);
  // The lane's link is down with it at the helper's end: its bytes are for nobody.
  if (!lane || !laneOpen()) return;
  let header = laneHeaders.get(projectId);
  if (!header) laneHeaders.set(projectId, (header = laneHeader(projectId)));
  const frame = new Uint8Array(header.length + bytes.length);
  frame.set(header);
  frame.set(bytes, header.length);
  lane.send(frame);
}

/** Opens the lane the helper offered; if it cannot be opened, native messaging carries on. */
function openLane(url: string): void {
  if (lane) return;
  const socket = new WebSocket(url);
  lane = socket;
  socket.binaryType = 'arraybuffer';
  let opened = false;
  socket.addEventListener('open', () => {
    opened = true;
    socket.send(JSON.stringify({ kind: 'hello' } satisfies ToHost));
  });
  socket.addEventListener('message', (event: MessageEvent<string | ArrayBuffer>) => {
    if (lane !== socket) return;
    if (typeof event.data === 'string') void fromHelper(JSON.parse(event.data) as ToExtension);
    else laneBytes(event.data);
  });
  socket.addEventListener('close', () => {
    // Closed by us, with the helper's port.
    if (lane !== socket) return;
    lane = null;
    if (!opened) {
      console.warn('AI Studio SSH: the helper\'s lane did not open; its bytes go over native messaging');
      return;
    }
    // Its links are down at the helper's end: they attach again, on native messaging, and
    // the lane is asked for again (its answer opens it).
    for (const [project, viaLane] of linkOwners) if (viaLane) linkOwners.delete(project);
    for (const [project, link] of links) if (link.viaLane) detach(project, 'the lane closed');
    if (laneReopens < LANE_REOPENS) {
      laneReopens += 1;
      setTimeout(() => {
        if (!lane) helper?.postMessage({ kind: 'hello' } satisfies ToHost);
      }, REOPEN_LANE_MS);
    }
  });
}

/** A binary frame of the lane: bytes for a project's carrier. */
function laneBytes(frame: ArrayBuffer): void {
  const { project, link: number, dataStart } = readLaneHeader(
    new Uint8Array(frame, 0, Math.min(frame.byteLength, maxLaneHeader())),
  );
  const link = links.get(project);
  if (!link?.up || number !== link.number) return;
  const bytes = new Uint8Array(frame, dataStart);
  if (link.direct) orderCarrier(link, { kind: 'bytes', data: bytes }, [frame]);
  else orderCarrier(link, { kind: 'bytes', data: toBase64(bytes) });
}

/** An order to a link's carrier: on its MessagePort once it has one. */
function orderCarrier(link: Link, order: CarrierOrder, transfer: Transferable[] = []): void {
  if (link.direct) link.direct.postMessage(order, transfer);
  else link.port.postMessage(order);
}

/**
 * A MessagePort our frame in a notebook tab handed over (`broker.ts`; background.ts gives
 * the worker's message events here): taken by the carrier it was offered to, by its nonce.
 */
export function acceptCarrierPort(event: { data: unknown; ports: readonly MessagePort[] }): void {
  const nonce = (event.data as { nonce?: unknown } | null)?.nonce;
  const [port] = event.ports;
  if (!port) return;
  const take = typeof nonce === 'string' ? offeredPorts.get(nonce) : undefined;
  if (!take) return port.close();
  offeredPorts.delete(nonce as string);
  take(port);
}

/**
 * Asks a new link's carrier for a MessagePort (a worker can take one; Firefox's event page
 * cannot, and keeps the runtime port), and waits for it at most [`PORT_WAIT_MS`].
 */
async function offerPort(projectId: string, link: Link, origin: string): Promise<void> {
  if (!TAKES_CARRIER_PORTS || !loadsPortBroker(origin)) return;
  const nonce = crypto.randomUUID();
  const port = await new Promise<MessagePort | null>((resolve) => {
    const giveUp = () => {
      if (offeredPorts.delete(nonce)) resolve(null);
    };
    offeredPorts.set(nonce, resolve);
    setTimeout(giveUp, PORT_WAIT_MS);
    // A tab that closes or reloads meanwhile sends nothing.
    link.port.onDisconnect.addListener(giveUp);
    link.port.postMessage({ kind: 'offerPort', nonce } satisfies CarrierOrder);
  });
  if (!port) return;
  if (links.get(projectId) !== link) return port.close();
  link.direct = port;
  port.onmessage = (event: MessageEvent<CarrierReport>) => fromCarrier(projectId, link, event.data);
}

/** For the DevTools console and the tests: each link and the ways it takes. */
export function directLinks(): { project: string; up: boolean; lane: boolean; messagePort: boolean }[] {
  return [...links].map(([project, link]) => ({ project, up: link.up, lane: link.viaLane, messagePort: link.direct !== null }));
}

/** Starts the helper (the browser runs it as long as this port is open; the open port also keeps an MV3 worker alive). */
export function connectHelper(): HelperStatus {
  if (helper) return status;
  let port: chrome.runtime.Port;
  try {
    port = ext.runtime.connectNative(HELPER_HOST_NAME);
  } catch (error) {
    status = { state: 'missing', error: String(error) };
    return status;
  }
  helper = port;
  laneReopens = 0;
  // A retry keeps saying what the last attempt found until this one answers or fails.
  if (status.state === 'unknown') status = { state: 'starting' };
  port.onMessage.addListener((message: ToExtension) => void fromHelper(message));
  port.onDisconnect.addListener(() => {
    // "Specified native messaging host not found." when it is not installed.
    const error = ext.runtime.lastError?.message ?? 'the helper exited';
    const wasRunning = status.state === 'running';
    status = wasRunning ? { state: 'exited', error } : { state: 'missing', error };
    helper = null;
    const closing = lane;
    lane = null;
    closing?.close();
    for (const project of [...links.keys()]) closeLink(project);
    linkOwners.clear();
    // It ran (its keeper died, or was replaced): start it again once, so the next ssh
    // works without the popup. A start that fails says so and is not retried.
    if (wasRunning) setTimeout(connectHelper, RESTART_HELPER_MS);
  });
  port.postMessage({ kind: 'hello' } satisfies ToHost);
  return status;
}

/** What the popup shows: whether the helper answers, and the project's streams. */
export function helperStatus(projectId: string): { helper: HelperStatus; link: LinkStats | null } {
  if (!helper || status.state === 'missing' || status.state === 'exited') connectHelper();
  return { helper: status, link: stats.get(projectId) ?? null };
}

/** A message from the helper, on its lane or natively. */
async function fromHelper(message: ToExtension): Promise<void> {
  switch (message.kind) {
    case 'hello':
      status = { state: 'running', version: message.version };
      if (message.lane) openLane(message.lane);
      return;
    case 'want':
      return openLink(message.project);
    case 'bytes': {
      const link = links.get(message.project);
      if (link?.up && message.link === link.number) {
        orderCarrier(link, { kind: 'bytes', data: message.data });
      }
      return;
    }
    case 'drop':
      return void detach(message.project, message.reason);
    case 'status':
      stats.set(message.project, message);
      return;
    case 'error':
      console.warn('AI Studio SSH: the helper did not understand a message:', message.error);
      return;
  }
}

/** The notebook tab (and frame) of a project whose Jupyter answers, if one is open. */
async function notebookTab(projectId: string): Promise<[number, TabNotebook] | undefined> {
  return (await allTabNotebooks()).find(
    ([, notebook]) => notebook.projectId === projectId && notebook.jupyterStarted && notebook.frameId !== undefined,
  );
}

/** Projects whose link is being opened (it takes a few awaits). */
const opening = new Set<string>();

/** The helper wants the project's link: a carrier in its notebook tab, if one is open. */
async function openLink(projectId: string, quiet = false): Promise<void> {
  // A link being attached says linkUp as soon as it is.
  if (links.has(projectId) || opening.has(projectId)) return;
  opening.add(projectId);
  try {
    await startLink(projectId, quiet);
  } finally {
    opening.delete(projectId);
  }
}

async function startLink(projectId: string, quiet: boolean): Promise<void> {
  const found = await notebookTab(projectId);
  if (!found) {
    if (quiet) return;
    tell({
      kind: 'noLink', project: projectId,
      reason: `no notebook tab of project ${projectId} is open in the browser: open the project's notebook on AI Studio and try again`,
    }, askedViaLane(projectId));
    return;
  }
  const attachCode = await withRendered(projectId, (project) => (project.route === 'direct' ? project.attachCode : null));
  if (!attachCode) {
    tell({
      kind: 'noLink', project: projectId,
      reason: `project ${projectId} is set to connect through a relay: choose "Direct" in the extension's options`,
    }, askedViaLane(projectId));
    return;
  }
  const [tabId, notebook] = found;
  const port = ext.tabs.connect(tabId, { name: CARRIER_PORT, frameId: notebook.frameId });
  const link: Link = {
    port, attachment: null, number: 0, up: false, heard: false, attachCode, viaLane: false, direct: null,
  };
  links.set(projectId, link);
  port.onMessage.addListener((report: CarrierReport) => fromCarrier(projectId, link, report));
  port.onDisconnect.addListener(() => {
    if (links.get(projectId) !== link) return;
    const wasUp = link.up;
    closeLink(projectId);
    // A reload: its sessions wait; the tab is looked for until a carrier attaches again
    // (a page still loading may hold an old record or no content script yet).
    if (wasUp) reopenLater(projectId);
    else if (!reopening.has(projectId)) {
      tell({ kind: 'noLink', project: projectId, reason: `the notebook tab of project ${projectId} closed or reloaded` }, askedViaLane(projectId));
    }
  });
  await offerPort(projectId, link, notebook.origin);
  if (links.get(projectId) === link) attach(link, projectId);
}

/** The tab went away under a link in use (a reload): its sessions wait, so look for the tab again. */
function reopenLater(projectId: string): void {
  reopening.set(projectId, Date.now() + REOPEN_FOR_MS);
  reopenTimer ??= setInterval(() => {
    for (const [project, until] of reopening) {
      if (Date.now() > until || !helper) reopening.delete(project);
      else void openLink(project, true);
    }
    if (reopening.size === 0) {
      clearInterval(reopenTimer);
      reopenTimer = undefined;
    }
  }, REOPEN_EVERY_MS);
}

function attach(link: Link, projectId: string): void {
  link.heard = false;
  link.attachment = carrierAttachment(crypto.randomUUID(), crypto.randomUUID(), new Date().toISOString());
  orderCarrier(link, {
    kind: 'attach', code: link.attachCode, attachment: link.attachment, staleKernel: carrierKernels.get(projectId) ?? null,
  });
}

function fromCarrier(projectId: string, link: Link, report: CarrierReport): void {
  if (links.get(projectId) !== link) return;
  switch (report.kind) {
    case 'attached':
      reopening.delete(projectId);
      carrierKernels.set(projectId, report.kernelId);
      link.up = true;
      link.number = (linkNumbers.get(projectId) ?? 0) + 1;
      linkNumbers.set(projectId, link.number);
      link.viaLane = laneOpen();
      linkOwners.set(projectId, link.viaLane);
      tell({ kind: 'linkUp', project: projectId, link: link.number }, link.viaLane);
      return;
    case 'frame': {
      const commId = link.attachment?.commId;
      if (!commId) return;
      if (report.binary !== undefined) {
        // The bridge's bytes, sent on from where they are in the frame.
        const frame = typeof report.binary === 'string' ? fromBase64(report.binary) : report.binary;
        const at = carrierBytesIn(frame, commId);
        if (at) {
          link.heard = true;
          tellBytes(projectId, link, frame.subarray(at[0], at[1]));
        }
        return;
      }
      if (report.text === undefined) return;
      const event = readCarrierText(report.text, commId);
      if (event.kind === 'closed' && !link.heard) {
        // The bridge does not answer (not started, stopped by Disconnect, or gone with a
        // container restart): no use attaching again.
        reopening.delete(projectId);
        closeLink(projectId);
        tell({
          kind: 'noLink', project: projectId,
          reason: `the bridge in project ${projectId}'s container does not answer (${event.reason}): press Connect in the extension's popup on the notebook tab`,
        }, askedViaLane(projectId));
      } else if (event.kind === 'closed') detach(projectId, `the kernel closed the channel: ${event.reason}`);
      else if (event.kind === 'kernelGone') detach(projectId, `the carrier's kernel is ${event.state}`);
      return;
    }
    case 'detached':
      detach(projectId, report.reason);
      return;
    case 'failed':
      reopening.delete(projectId);
      closeLink(projectId);
      tell({ kind: 'noLink', project: projectId, reason: report.reason }, askedViaLane(projectId));
      return;
  }
}

/** A leg dropped: the helper forgets the link's bytes in flight, and a new attachment follows. */
function detach(projectId: string, reason: string): void {
  const link = links.get(projectId);
  if (!link?.attachment) return;
  const wasUp = link.up;
  link.up = false;
  link.attachment = null;
  if (wasUp) tell({ kind: 'linkDown', project: projectId, reason }, link.viaLane);
  orderCarrier(link, { kind: 'detach' });
  setTimeout(() => {
    if (links.get(projectId) === link && !link.attachment) attach(link, projectId);
  }, REATTACH_MS);
}

function closeLink(projectId: string): void {
  const link = links.get(projectId);
  if (!link) return;
  links.delete(projectId);
  stats.delete(projectId);
  if (link.up) tell({ kind: 'linkDown', project: projectId, reason: 'the carrier closed' }, link.viaLane);
  link.direct?.close();
  link.port.disconnect();
}
