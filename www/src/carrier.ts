// The carrier of direct mode in a notebook frame: a kernel of the extension's own whose comm
// takes the helper's bytes to the container's bridge and back. Thin: the background says
// what to run and which messages to send, the core reads what comes back (each frame goes
// to the background as it came); this file moves bytes between the background (its runtime
// port, or in Chromium a MessagePort our hidden frame hands the worker) and the WebSocket.
import { fromBase64, toBase64 } from './base64';
import type { JupyterServer, OwnKernel } from './jupyterServer';
import { BROKER_PAGE, type CarrierOrder, type CarrierReport } from './messages';
import { ext } from './platform';
import { send } from './send';

const encoder = new TextEncoder();
/** After the background's port closed, it is woken this much later. */
const WAKE_AFTER_MS = 1000;

export class Carrier {
  private kernel: OwnKernel | null = null;
  /** The current attachment's WebSocket and data head; null between attachments. */
  private socket: WebSocket | null = null;
  private head: Uint8Array | null = null;
  /** Where each message's number goes in the head, and the last number used. */
  private counterAt = 0;
  private counterDigits = 0;
  private counter = 0;
  private closed = false;
  /** Attachments run one after another (a drop can order one while another starts). */
  private attaching: Promise<void> = Promise.resolve();
  /** The MessagePort handed to the worker, and our frame that handed it over. */
  private direct: MessagePort | null = null;
  private broker: HTMLIFrameElement | null = null;
  /** Reports go the way the last `attach` came: the worker listens there. */
  private reportDirect = false;

  constructor(private readonly server: JupyterServer, private readonly port: chrome.runtime.Port) {
    port.onMessage.addListener((order: CarrierOrder) => this.order(order, false));
    port.onDisconnect.addListener(() => {
      void this.close();
      // The worker may have stopped (a browser stops MV3 workers, or it crashed): any
      // request starts it again, and it asks the helper which links its sessions wait for.
      // Harmless when the worker closed the link itself.
      setTimeout(() => void send({ kind: 'coreInfo' }).catch(() => undefined), WAKE_AFTER_MS);
    });
  }

  private report(report: CarrierReport, transfer: Transferable[] = []): void {
    if (this.closed) return;
    if (this.reportingDirect) this.direct?.postMessage(report, transfer);
    else this.port.postMessage(report);
  }

  /** Whether reports go on the MessagePort (the last `attach` came on it). */
  private get reportingDirect(): boolean {
    return this.reportDirect && this.direct !== null;
  }

  /** A binary frame from the kernel, as it goes to the worker on the way in use. */
  private binaryReport(frame: ArrayBuffer): void {
    if (this.reportingDirect) this.report({ kind: 'frame', text: undefined, binary: new Uint8Array(frame) }, [frame]);
    else this.report({ kind: 'frame', text: undefined, binary: toBase64(new Uint8Array(frame)) });
  }

  /** Our hidden frame takes a MessagePort to the worker (`broker.ts`); orders may come on it. */
  private offerPort(nonce: string): void {
    if (this.broker || this.closed) return;
    const broker = document.createElement('iframe');
    broker.hidden = true;
    broker.src = ext.runtime.getURL(BROKER_PAGE);
    // Fixed now, never read back from the frame: the page shares its DOM and may point it
    // elsewhere, and the nonce must reach our frame only.
    const ours = new URL(ext.runtime.getURL('')).origin;
    broker.addEventListener('load', () => {
      if (this.closed) return;
      const channel = new MessageChannel();
      channel.port1.onmessage = (event: MessageEvent<CarrierOrder>) => {
        // The worker has the port: our frame's work is done.
        this.broker?.remove();
        this.order(event.data, true);
      };
      this.direct = channel.port1;
      broker.contentWindow?.postMessage({ nonce }, ours, [channel.port2]);
    }, { once: true });
    this.broker = broker;
    document.documentElement.append(broker);
  }

  private order(order: CarrierOrder, direct: boolean): void {
    switch (order.kind) {
      case 'offerPort':
        this.offerPort(order.nonce);
        return;
      case 'attach':
        this.reportDirect = direct;
        this.attaching = this.attaching.then(() => this.attach(order)).catch((error: unknown) => {
          this.report({ kind: 'failed', reason: `the carrier could not start: ${error instanceof Error ? error.message : String(error)}` });
        });
        return;
      case 'bytes': {
        if (!this.socket || !this.head || this.socket.readyState !== WebSocket.OPEN) return;
        const bytes = typeof order.data === 'string' ? fromBase64(order.data) : order.data;
        const frame = new Uint8Array(this.head.length + bytes.length);
        frame.set(this.head);
        this.counter += 1;
        frame.set(encoder.encode(this.counter.toString(16).padStart(this.counterDigits, '0')), this.counterAt);
        frame.set(bytes, this.head.length);
        this.socket.send(frame);
        return;
      }
      case 'detach':
        this.detach();
        return;
    }
  }

  private detach(): void {
    const socket = this.socket;
    this.socket = null;
    this.head = null;
    socket?.close();
  }

  /** A kernel of our own, shut down again if this carrier closed meanwhile. */
  private async startKernel(): Promise<OwnKernel | null> {
    const kernel = await this.server.startKernel();
    if (!this.closed) return kernel;
    await kernel.close();
    return null;
  }

  /** Runs the attach code in the kernel (a new one if it is gone), then opens the comm. */
  private async attach({ code, attachment, staleKernel }: Extract<CarrierOrder, { kind: 'attach' }>): Promise<void> {
    this.detach();
    if (this.closed) return;
    // A carrier of this page before a reload: nobody closed its kernel.
    if (staleKernel && staleKernel !== this.kernel?.id) {
      await this.server.request(`api/kernels/${staleKernel}`, 'DELETE').catch(() => undefined);
    }
    this.kernel ??= await this.startKernel();
    if (!this.kernel) return;
    try {
      await this.kernel.renew();
    } catch {
      // The kernel is gone (shut down, or the container restarted): a new one.
      this.kernel = await this.startKernel();
      if (!this.kernel) return;
    }
    const result = await this.kernel.execute(code);
    if (!result.ok) {
      this.report({ kind: 'failed', reason: `the carrier's code failed in its kernel: ${result.output.trim()}` });
      return;
    }
    if (this.closed) return;
    const socket = this.kernel.webSocket;
    socket.binaryType = 'arraybuffer';
    socket.addEventListener('message', (message: MessageEvent<string | ArrayBuffer>) => {
      if (this.socket !== socket) return;
      if (typeof message.data === 'string') this.report({ kind: 'frame', text: message.data, binary: undefined });
      else this.binaryReport(message.data);
    });
    socket.addEventListener('close', () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.report({ kind: 'detached', reason: 'the kernel WebSocket closed' });
    });
    this.socket = socket;
    this.head = fromBase64(attachment.dataHead);
    this.counterAt = attachment.counterAt;
    this.counterDigits = attachment.counterDigits;
    this.counter = 0;
    socket.send(attachment.commOpen);
    this.report({ kind: 'attached', kernelId: this.kernel.id });
  }

  /** The background or this page went away: nothing of ours is left running in Jupyter. */
  private async close(): Promise<void> {
    this.closed = true;
    this.detach();
    this.direct?.close();
    this.broker?.remove();
    await this.kernel?.close();
    this.kernel = null;
  }
}
