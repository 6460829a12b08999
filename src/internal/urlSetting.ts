/**
 * The one reading of a setting that names an upstream's URL (`GEMINI_BASE_URL`,
 * `OPENAI_REALTIME_URL`, `OBSERVABILITY_SERVER_URL`, `ANTHROPIC_BASE_URL`): trimmed, of one of
 * the expected protocols, without credentials, without a query or fragment.
 *
 * Credentials in such a URL are refused with a `ConfigError` rather than sent: every one of these
 * upstreams authenticates with its own key setting (`GEMINI_API_KEY` as `x-goog-api-key`,
 * `OPENAI_API_KEY` as a bearer token, `OBSERVABILITY_API_KEY` as `X-API-Key`), a `user:password@`
 * is not how any of them is reached, and a URL is shown in error text, logs and the spool. The
 * message shows the value with its credentials redacted. (A URL whose credentials are needed, such
 * as `BIG3_DATABASE_URL`, keeps them and is shown through `redactUrl`.)
 *
 * @internal
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Either from "effect/Either"
import { preview } from "./preview.js"
import { hasCredentials, redactLoosely, redactUrl } from "./redactUrl.js"

/** What a URL setting accepts. */
export interface UrlRules {
  /** Accepted protocols, with their colon: `["http:", "https:"]`. */
  readonly protocols: ReadonlyArray<string>
  /** What the message says is expected: "an http(s) URL". */
  readonly kind: string
  /** An example for the message: the default. */
  readonly example: string
  /**
   * A URL big3 adds to (request paths, `/batch`, `?model=`): a query or a fragment would end up in
   * the middle of every request's URL, and a `?key=` in error text, logs and events, so neither is
   * accepted. Every upstream URL setting is one.
   */
  readonly bare?: boolean | undefined
}

/** http and https, no query, no fragment. */
export const httpUrl = (example: string): UrlRules => ({ protocols: ["http:", "https:"], kind: "an http(s) URL", example, bare: true })

/** ws and wss, no query, no fragment. */
export const webSocketUrl = (example: string): UrlRules => ({ protocols: ["ws:", "wss:"], kind: "a ws(s) URL", example, bare: true })

/** A URL as shown in a refusal: its query and fragment, which may hold a key, as `?…` and `#…`. */
export const withoutQuery = (url: URL): string =>
  `${url.origin}${url.pathname}${url.search === "" ? "" : "?…"}${url.hash === "" ? "" : "#…"}`

/** Why `value` is not an acceptable URL for `name`, or the URL. */
export const checkUrl = (name: string, value: string, rules: UrlRules): Either.Either<URL, string> => {
  const notValid = () =>
    `${name}=${preview(redactLoosely(value.trim()))} is not valid: expected ${rules.kind} such as ${rules.example}`
  let url: URL
  try {
    url = new URL(value.trim())
  } catch {
    return Either.left(notValid())
  }
  if (!rules.protocols.includes(url.protocol)) return Either.left(notValid())
  if (hasCredentials(url)) {
    return Either.left(
      `${name}=${preview(redactUrl(url.href))} carries credentials (user:password@), which big3 does not send and would show in errors ` +
        `and logs: remove them and give the upstream's key in its own setting`
    )
  }
  if (rules.bare === true && (url.search !== "" || url.hash !== "")) {
    return Either.left(
      `${name}=${preview(withoutQuery(url))} ` +
        `is not valid: it takes no query or fragment, since big3 adds to it and a key there would show in ` +
        `errors, logs and events; give the upstream's key in its own setting`
    )
  }
  return Either.right(url)
}

/** The trimmed `value` when it is an acceptable URL for `name`, else a `ConfigError` saying why. */
const checked = (name: string, value: string, rules: UrlRules): Either.Either<string, ConfigError.ConfigError> =>
  Either.match(checkUrl(name, value, rules), {
    onLeft: (message) => Either.left(ConfigError.InvalidData([name], message)),
    onRight: () => Either.right(value.trim())
  })

/** A URL setting with a default: trimmed, one of `rules.protocols`, no credentials. */
export const urlSetting = (name: string, fallback: string, rules: UrlRules): Config.Config<string> =>
  Config.string(name).pipe(
    Config.withDefault(fallback),
    Config.mapOrFail((value) => checked(name, value, rules))
  )

/** An optional URL setting: `undefined` when unset or blank. */
export const optionalUrlSetting = (name: string, rules: UrlRules): Config.Config<string | undefined> =>
  Config.string(name).pipe(
    Config.withDefault(""),
    Config.mapOrFail((value) => value.trim() === "" ? Either.right(undefined) : checked(name, value, rules))
  )
