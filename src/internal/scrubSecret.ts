/**
 * A secret (an API key) out of a text that may echo it: an upstream's answer, an error message,
 * a child process's stderr. Every occurrence becomes `<redacted>`, as URL credentials do: the
 * secret as it is, and as a server may echo it, percent-encoded (a query string) or escaped in a
 * JSON string.
 *
 * @internal
 */
import { redactedCredentials } from "./redactUrl.js"

/** The forms a secret may take in an echo: itself, percent-encoded, JSON-escaped (only those that differ). */
const formsOf = (secret: string): ReadonlyArray<string> => {
  const forms = [secret]
  for (const form of [encodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)]) {
    if (!forms.includes(form)) forms.push(form)
  }
  return forms
}

/** A function that scrubs `secret` (its forms worked out once): for a client that scrubs every answer. */
export const secretScrubber = (secret: string | undefined): (text: string) => string => {
  if (secret === undefined || secret === "") return (text) => text
  const forms = formsOf(secret)
  return (text) => {
    let scrubbed = text
    for (const form of forms) {
      if (scrubbed.includes(form)) scrubbed = scrubbed.split(form).join(redactedCredentials)
    }
    return scrubbed
  }
}

export const scrubSecret = (text: string, secret: string | undefined): string => secretScrubber(secret)(text)
