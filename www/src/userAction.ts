// A user's click on an extension page: the work it starts, with progress and any error shown.

/** Runs a user action with progress shown and its error, if any, shown in `errorElement`. */
export async function act(errorElement: HTMLElement, working: string, work: () => Promise<void>): Promise<void> {
  errorElement.textContent = working;
  try {
    await work();
    errorElement.textContent = '';
  } catch (error) {
    errorElement.textContent = error instanceof Error ? error.message : String(error);
  }
}
