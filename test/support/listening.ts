import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** The TCP sockets listening on this machine (Linux: /proc/net/tcp and tcp6), by socket inode. */
function listeningSockets(): Array<{ inode: string; address: string; port: number }> {
  return ["/proc/net/tcp", "/proc/net/tcp6"].flatMap((file) =>
    readFileSync(file, "utf8")
      .split("\n")
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields[3] === "0A")
      .map((fields) => {
        const [hexAddress = "", hexPort = "0"] = (fields[1] ?? "").split(":");
        const address =
          hexAddress.length === 8
            ? (hexAddress.match(/../g) ?? [])
                .reverse()
                .map((b) => parseInt(b, 16))
                .join(".")
            : hexAddress;
        return { inode: fields[9] ?? "", address, port: parseInt(hexPort, 16) };
      }),
  );
}

/** The local addresses on which something listens on TCP `port`. */
export function listeningOn(port: number): string[] {
  return listeningSockets()
    .filter((s) => s.port === port)
    .map((s) => s.address);
}

/** `pid` and every process descended from it that is still alive. */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name (in parentheses) may hold spaces: the parent is the second field after it.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  return tree.filter((p) => parents.has(p));
}

/** The TCP ports on which `pid` or any process descended from it listens. */
export function portsOfTree(pid: number): number[] {
  const inodes = new Set<string>();
  for (const p of processTree(pid)) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${p}/fd/${fd}`);
        const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
        if (inode !== undefined) inodes.add(inode);
      } catch {
        // closed meanwhile
      }
    }
  }
  return [
    ...new Set(
      listeningSockets()
        .filter((s) => inodes.has(s.inode))
        .map((s) => s.port),
    ),
  ].sort((a, b) => a - b);
}
