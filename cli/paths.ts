/** The repository root (dist/cli/ is two levels below it), as a URL ending in "/". */
export const REPO_ROOT = new URL("../../", import.meta.url);
