import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";

/** One mail as the receiving server got it. */
export interface ReceivedMail {
  /** MAIL FROM. */
  from: string;
  /** RCPT TO, every one. */
  to: string[];
  /** The user it authenticated as (undefined: none). */
  user: string | undefined;
  /** The whole message, headers and body, as sent. */
  raw: string;
  /** The Subject header, unfolded. */
  subject: string;
}

export interface SmtpReceiver {
  /** host:port, as Alertmanager's smarthost. */
  smarthost: string;
  port: number;
  mails: ReceivedMail[];
  close(): Promise<void>;
}

/**
 * A real SMTP server (the `smtp-server` package) on a free loopback port that keeps every mail it
 * gets. With `users`, it demands AUTH (PLAIN or LOGIN, allowed without TLS: the client is on
 * loopback, which Go's PLAIN client also insists on) and refuses a wrong password.
 */
export async function startSmtpReceiver(options: { users?: Record<string, string> } = {}): Promise<SmtpReceiver> {
  const mails: ReceivedMail[] = [];
  const users = options.users;
  const server = new SMTPServer({
    logger: false,
    disabledCommands: ["STARTTLS"],
    authOptional: users === undefined,
    allowInsecureAuth: true,
    authMethods: ["PLAIN", "LOGIN"],
    onAuth(auth, _session, callback) {
      if (users !== undefined && auth.username !== undefined && users[auth.username] === auth.password)
        callback(null, { user: auth.username });
      else callback(new Error("invalid username or password"));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        const from = session.envelope.mailFrom;
        mails.push({
          from: from === false ? "" : from.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          user: typeof session.user === "string" ? session.user : undefined,
          raw,
          subject: /^Subject: (.*(?:\r?\n[ \t].*)*)/im.exec(raw)?.[1]?.replace(/\r?\n[ \t]+/g, " ") ?? "",
        });
        callback();
      });
    },
  });
  server.listen(0, "127.0.0.1");
  await once(server.server, "listening");
  const { port } = server.server.address() as AddressInfo;
  return {
    smarthost: `127.0.0.1:${port}`,
    port,
    mails,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
