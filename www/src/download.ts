// Saving files from extension pages through blob links: no downloads permission needed.
import type { KeyFile } from './messages';

export function download(files: KeyFile[]): void {
  for (const file of files) {
    const url = URL.createObjectURL(new Blob([file.text], { type: 'application/octet-stream' }));
    const link = Object.assign(document.createElement('a'), { href: url, download: file.name });
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  }
}
