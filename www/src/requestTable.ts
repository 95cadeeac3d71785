// How a table of requests works: each kind names who may send it and its handler, the
// request and reply types follow from the table, and one function answers a message with
// the sender checked. No browser API here (the table itself is requests.ts), so node tests it.

/** Who may send a kind. Extension pages may send every kind; content scripts only these. */
export type Audience = 'extensionPages' | 'contentScripts';

/** Who sent a message, as the background tells from the browser's sender fields. */
export type SenderContext = 'extensionPage' | 'contentScript';

/** The sender fields the background reads (the browser sets them; nothing the page says). */
export type Sender = chrome.runtime.MessageSender;

/** One kind: who may send it and what answers it. `request` is the message without its kind. */
export interface RequestEntry {
  readonly from: Audience;
  readonly handle: (request: never, sender: Sender) => unknown;
}

export type RequestTable = Readonly<Record<string, RequestEntry>>;

/** What a handler takes besides `kind` (nothing for a handler that declares no request). */
type Body<Handle> = Handle extends (request: infer Q, ...rest: never[]) => unknown
  ? (unknown extends Q ? object : Q)
  : never;

/** Every request a table answers, as a union on `kind`. */
export type RequestOf<T extends RequestTable> = {
  [K in keyof T & string]: { kind: K } & Body<T[K]['handle']>;
}[keyof T & string];

/** What a table answers to one kind. */
export type ReplyOf<T extends RequestTable, K extends keyof T> = Awaited<ReturnType<T[K]['handle']>>;

/** How a reply crosses `runtime.sendMessage`: errors keep their name for the UI to switch on. */
export type Envelope<T> =
  | { ok: true; value: T }
  | { ok: false; error: { name: string; message: string } };

/** An error raised in the background, re-thrown in the caller with its original name. */
export class BackgroundError extends Error {
  constructor(name: string, message: string) {
    super(message);
    this.name = name;
  }
}

/** An `Error` whose `name` is a stable variant the UI can switch on. */
export function namedError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

/**
 * Who sent a message: one of our extension pages (its URL is in the extension's origin), one
 * of our content scripts, or `null` for anyone else (another extension), who gets no answer.
 */
export function senderContext(sender: Sender, extensionId: string, extensionOrigin: string): SenderContext | null {
  if (sender.id !== extensionId) return null;
  return sender.url?.startsWith(extensionOrigin) ? 'extensionPage' : 'contentScript';
}

const entryOf = (table: RequestTable, kind: unknown): RequestEntry | undefined =>
  typeof kind === 'string' && Object.hasOwn(table, kind) ? table[kind] : undefined;

/** Whether `context` may send `kind`: keys and settings are for extension pages only. */
export function mayAsk(table: RequestTable, kind: unknown, context: SenderContext): boolean {
  return context === 'extensionPage' || entryOf(table, kind)?.from === 'contentScripts';
}

/**
 * Answers a request from `context` once `ready` (the core) is: `Forbidden` when the sender
 * may not ask, `UnknownRequest` for a kind the table does not have.
 */
export async function answer(
  table: RequestTable, request: unknown, sender: Sender, context: SenderContext, ready: Promise<unknown>,
): Promise<unknown> {
  const kind = (request as { kind?: unknown } | null)?.kind;
  if (!mayAsk(table, kind, context)) throw namedError('Forbidden', `${String(kind)} is only answered to extension pages`);
  await ready;
  const entry = entryOf(table, kind);
  if (!entry) throw namedError('UnknownRequest', `unknown request ${JSON.stringify(kind)}`);
  return entry.handle(request as never, sender);
}

/** A reply as it crosses `runtime.sendMessage`. */
export async function enveloped(reply: Promise<unknown>): Promise<Envelope<unknown>> {
  try {
    return { ok: true, value: await reply };
  } catch (error) {
    const { name, message } = error instanceof Error ? error : new Error(String(error));
    return { ok: false, error: { name, message } };
  }
}

/**
 * The reply inside an envelope.
 * @throws BackgroundError when the background handler failed, or gave no reply at all.
 */
export function unwrap<T>(envelope: Envelope<T> | undefined, kind: string): T {
  if (!envelope) throw new BackgroundError('NoReply', `no reply to ${kind}`);
  if (!envelope.ok) throw new BackgroundError(envelope.error.name, envelope.error.message);
  return envelope.value;
}
