import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { AllowedHosts, hostListSchema, hostName } from "../../lib/infra/http/allowed-hosts.js";

describe("AllowedHosts", () => {
  const hosts = new AllowedHosts({ names: ["Fanwatch.Plant.Example"], setting: "GATEWAY_HOSTS", hostname: "ws-42" });

  it("answers loopback names, IP addresses, this machine's name and the listed names, with or without a port", () => {
    for (const header of [
      "localhost",
      "localhost:8080",
      "LOCALHOST.:8080",
      "127.0.0.1",
      "127.0.0.1:8080",
      "127.8.0.1:1",
      "[::1]:8080",
      "[::1]",
      "10.42.0.17:8080", // a pod's address, as Prometheus scrapes it
      "[2001:db8::5]:80",
      "ws-42:8080",
      "ws-42.local",
      "fanwatch.plant.example",
      "fanwatch.plant.example:443",
      undefined, // HTTP/1.0: browsers always send a Host
    ])
      assert.equal(hosts.refusal(header), undefined, String(header));
  });

  it("refuses any other name, and says which setting would allow it", () => {
    for (const header of [
      "evil.example",
      "evil.example:8080",
      "127.0.0.1.nip.io",
      "localhost.evil.example",
      "ws-42.evil.example",
    ])
      assert.match(
        hosts.refusal(header) ?? "",
        /is not a name this server answers for \(a guard against DNS rebinding\): call it by localhost, 127\.0\.0\.1 or an IP address, or list the name in GATEWAY_HOSTS/,
        header,
      );
  });

  it("refuses what is not a host at all", () => {
    for (const header of ["", "a b", "user@host", "[evil.example]:80", "[::1", "host:port"])
      assert.match(hosts.refusal(header) ?? "", /is not a host name or address/, JSON.stringify(header));
  });

  it("reads the name of a Host header", () => {
    assert.equal(hostName("Example.COM.:8080"), "example.com");
    assert.equal(hostName("[::1]:80"), "::1");
    assert.equal(hostName("[::1]:"), "::1");
    assert.equal(hostName("[1.2.3.4]"), undefined);
  });
});

describe("hostListSchema", () => {
  const schema = z.object({ HOSTS: hostListSchema() });

  it("reads a comma list of names, dropping ports and empty items", () => {
    assert.deepEqual(schema.parse({ HOSTS: " a.example, B.example:8080 ,, " }).HOSTS, ["a.example", "b.example"]);
    assert.deepEqual(schema.parse({}).HOSTS, []);
  });

  it("refuses an item that is not a host name", () => {
    assert.throws(
      () => schema.parse({ HOSTS: "a.example, http://b.example/" }),
      /http:\/\/b\.example\/.{0,4} is not a host name/,
    );
  });
});
