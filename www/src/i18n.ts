// UI text from _locales (zh_CN and en), for extension pages.
import { ext } from './platform';

/** A message from _locales; a missing key shows as itself so it is noticed, not blank. */
export function t(key: string, substitutions?: string | string[]): string {
  return ext.i18n.getMessage(key, substitutions) || key;
}

/** Fills every `[data-i18n]` element with its message and sets the page language. */
export function localizePage(root: ParentNode = document): void {
  document.documentElement.lang = ext.i18n.getUILanguage();
  for (const element of root.querySelectorAll<HTMLElement>('[data-i18n]')) {
    element.textContent = t(element.dataset.i18n ?? '');
  }
}
