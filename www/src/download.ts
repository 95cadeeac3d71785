// Saving files from extension pages through blob links: no downloads permission needed.
import type { UserFile } from '../../build/wasm/aistudio_ssh.js';

export function download(files: UserFile[]): void {
  for (const file of files) {
    const url = URL.createObjectURL(new Blob([file.text], { type: 'application/octet-stream' }));
    const link = Object.assign(document.createElement('a'), { href: url, download: file.name });
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
}
