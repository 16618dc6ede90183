import { userInfo } from "node:os";

/**
 * Who runs a command, as the registry and the fan records keep it: the user's name, or "unknown
 * user" where the process's uid has no passwd entry (a container run under an arbitrary uid, as
 * OpenShift and many Kubernetes jobs do), where os.userInfo() throws.
 */
export function userName(): string {
  try {
    return userInfo().username;
  } catch {
    return "unknown user";
  }
}
