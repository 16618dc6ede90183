/** The `Authorization` header value of HTTP basic auth (RFC 7617). */
export function basicAuthHeader({ user, password }: { user: string; password: string }): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}
