import { fileURLToPath } from "node:url";

/** Tests run compiled from dist/test/…; the repository root is three levels up from here. */
export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const CLI = fileURLToPath(new URL("../../../bin/fanwatch.js", import.meta.url));
export const MODEL_DIR = fileURLToPath(new URL("../../../model/artifact", import.meta.url));
