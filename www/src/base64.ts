// Bytes as base64 text, the way they cross runtime ports and native messaging (both JSON only).
// Recent browsers have it built in (Chromium 140, Firefox 133); older ones take the loop.

type WithBase64 = { fromBase64?: (text: string) => Uint8Array };
type BytesWithBase64 = Uint8Array & { toBase64?: () => string };

export function fromBase64(text: string): Uint8Array {
  const builtIn = (Uint8Array as unknown as WithBase64).fromBase64;
  if (builtIn) return builtIn(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function toBase64(bytes: Uint8Array): string {
  const builtIn = (bytes as BytesWithBase64).toBase64;
  if (builtIn) return builtIn.call(bytes);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}
