/**
 * URL credentials out of sight. A `user:password@` in a URL setting (`OBSERVABILITY_SERVER_URL`,
 * `GEMINI_BASE_URL`, `OPENAI_REALTIME_URL`, `BIG3_DATABASE_URL`, …) is a secret: wherever a URL
 * is shown or stored (error text, logs, events, recorded requests, the spool) it goes through
 * `redactUrl`, which replaces the whole user-info part, user name included (a token is often
 * given as the user name), by `<redacted>`.
 *
 * Pure: it works on text, so it also scrubs URLs inside a message (an error's description).
 *
 * @internal
 */

/** What stands for the credentials. */
export const redactedCredentials = "<redacted>"

/**
 * `scheme://` then the user-info up to the last `@` of the authority (the WHATWG parser takes
 * the last one too), stopping at the path, query, fragment, whitespace or a quote.
 */
const credentialsInUrl = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@"'<>]*(?:@[^\s/?#@"'<>]*)*@/gi

/** `text` (a URL, or a message holding URLs) with every URL's credentials replaced by `<redacted>`. */
export const redactUrl = (text: string | URL): string =>
  String(text).replace(credentialsInUrl, `$1${redactedCredentials}@`)

/** True when `url` carries a user name or a password. */
export const hasCredentials = (url: URL): boolean => url.username !== "" || url.password !== ""

/**
 * For text that may not even parse as a URL (a setting being refused): everything between the
 * scheme and the last `@` redacted. It hides too much rather than too little: a malformed URL
 * such as `http://user:pa/ss@host` has its password past the first `/`.
 */
export const redactLoosely = (text: string): string => {
  const at = text.lastIndexOf("@")
  if (at === -1) return text
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(text)
  return `${scheme === null ? "" : scheme[0]}${redactedCredentials}${text.slice(at)}`
}
