// The one way extension pages and content scripts ask the background.
import { ext } from './platform';
import { type Envelope, unwrap } from './requestTable';
import type { Reply, Request } from './requests';

/**
 * Sends a request to the background and unwraps its envelope.
 * @throws BackgroundError when the background handler failed.
 */
export async function send<R extends Request>(request: R): Promise<Reply<R['kind']>> {
  const envelope = (await ext.runtime.sendMessage(request)) as Envelope<Reply<R['kind']>> | undefined;
  return unwrap(envelope, request.kind);
}
