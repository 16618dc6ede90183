import { readFile } from "node:fs/promises";
import { InvalidArgumentError, type Command } from "commander";
import { InputError } from "../lib/errors.js";
import { fanUsername } from "../lib/mqtt/broker-auth.js";
import { generatePassword, mosquittoHash } from "../lib/mqtt/mosquitto-passwd.js";
import { readTopics } from "../lib/infra/config.js";
import type { Io } from "./parse.js";
import type { RegistryAccess } from "./registry-access.js";

/** A password a person chose: long enough that guessing it over MQTT is hopeless. */
const MIN_PASSWORD_LENGTH = 16;
/** The NodePort of the fans' TLS listener (deploy/k3s/base/mosquitto.yaml, Service mosquitto-fans). */
const FANS_PORT = 30883;

interface CredentialsOptions {
  passwordFile?: string;
  port: number;
}

/**
 * `fanwatch fans credentials ID [--password-file F]`: gives a fan its MQTT password. The registry
 * keeps only Mosquitto's hash of it (mqttPasswordHash); the password is printed once, here, with
 * what the device needs, and exists nowhere else. broker-auth (--watch in the cluster) then lets
 * the fan in; a new password replaces the old one, whose connection is closed.
 */
export function addFansCredentialsCommand(fans: Command, io: Io, access: RegistryAccess): Command {
  const credentials = fans
    .command("credentials")
    .description(
      "give a fan its MQTT password (generated, or read from --password-file): the registry stores only its hash; prints the password once with the device's settings",
    )
    .argument("<id>", "the fan's device id")
    .option(
      "--password-file <file>",
      `the password to use (at least ${MIN_PASSWORD_LENGTH} characters), instead of a generated one`,
    )
    .option("--port <port>", "the fans' TLS port to tell the device", port, FANS_PORT);
  const given = access.flags(credentials);
  credentials.exitOverride();
  credentials.action(async (id: string, opts: CredentialsOptions & Record<string, unknown>) => {
    const password = opts.passwordFile === undefined ? generatePassword() : await readPassword(opts.passwordFile);
    await access.with(given(opts), async (registry) => {
      const record = await registry.setPasswordHash(id, mosquittoHash(password));
      const topic = `${readTopics().telemetry}/${id}`;
      io.out(`MQTT credentials for fan ${id} (the registry keeps only their hash: note the password now)`);
      io.out(`  username   ${fanUsername(id)}`);
      io.out(`  client id  ${fanUsername(id)}`);
      io.out(`  password   ${password}`);
      io.out(`  topic      ${topic}`);
      io.out(`  broker     TLS (mqtts) on port ${opts.port} of any node, with the cluster's CA certificate`);
      if (record.state !== "active")
        io.err(
          `fan ${id} is ${record.state}: it may log in once it is active (fanwatch fans ${record.state === "pending" ? "approve" : "add"} ${id})`,
        );
    });
  });
  return credentials;
}

async function readPassword(file: string): Promise<string> {
  const text = (await readFile(file, "utf8")).replace(/\r?\n$/, "");
  if (text.length < MIN_PASSWORD_LENGTH)
    throw new InputError(
      `the password in ${file} has ${text.length} characters: a fan's needs at least ${MIN_PASSWORD_LENGTH} (or leave out --password-file for a generated one)`,
      "password-file",
    );
  if (/[\r\n]/.test(text)) throw new InputError(`the password in ${file} is more than one line`, "password-file");
  return text;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError("a port number, 1 to 65535");
  return n;
}
