import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A new folder holding the gateway's /system credentials as OpenFaaS mounts them
 * (`basic-auth-user`, `basic-auth-password`), for a connector's `secret_mount_path` or a gateway's
 * SECRET_MOUNT_PATH. The caller removes it.
 */
export async function writeGatewaySecrets(prefix: string, user: string, password: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await writeFile(join(dir, "basic-auth-user"), `${user}\n`);
  await writeFile(join(dir, "basic-auth-password"), `${password}\n`);
  return dir;
}
