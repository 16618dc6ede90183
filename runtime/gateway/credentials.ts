import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { z } from "zod";
import { defineSettings, readSecret, readSettings, SECRET_SETTINGS } from "../../lib/infra/settings.js";

// Apart from runner.ts so that the CLI's help, which lists these settings, does not load the gateway.

/** The /system/* credentials (docs/start.md). */
export const GATEWAY_SETTINGS = defineSettings({
  GATEWAY_PASSWORD: {
    env: ["GATEWAY_PASSWORD"],
    help: "the password of /system/*, whose user is the secret basic-auth-user, else admin",
    secret: "basic-auth-password",
    default: "made up and printed at start",
    schema: z.string().optional(),
  },
  SECRET_MOUNT_PATH: SECRET_SETTINGS.SECRET_MOUNT_PATH,
});

/** The /system/* user and password: the OpenFaaS secrets where they are mounted, else admin and GATEWAY_PASSWORD or a random one. */
export function gatewayCredentials(env?: NodeJS.ProcessEnv): { user: string; password: string } {
  const s = readSettings(GATEWAY_SETTINGS, env);
  return {
    user: readSecret(join(s.SECRET_MOUNT_PATH, "basic-auth-user")) ?? "admin",
    password: s.GATEWAY_PASSWORD ?? randomBytes(12).toString("base64url"),
  };
}
