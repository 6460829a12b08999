/**
 * A secret (an API key) out of a text that may echo it: an upstream's answer, an error message,
 * a child process's stderr. Every occurrence becomes `<redacted>`, as URL credentials do.
 *
 * @internal
 */
import { redactedCredentials } from "./redactUrl.js"

export const scrubSecret = (text: string, secret: string | undefined): string =>
  secret === undefined || secret === "" || !text.includes(secret) ? text : text.split(secret).join(redactedCredentials)
