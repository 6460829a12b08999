/**
 * A `user:password@` in an upstream's URL setting never reaches error text, logs, the spool or a
 * request: each client refuses it with a ConfigError that shows the URL redacted.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as ClaudeAgentSdk from "../src/agents/ClaudeAgentSdk.js"
import * as Gemini from "../src/Gemini.js"
import * as Observability from "../src/Observability.js"
import * as ObservabilityOptions from "../src/observability/Options.js"
import * as Realtime from "../src/Realtime.js"
import * as Sandbox from "../src/Sandbox.js"
import { big3 } from "./support/cli.js"
import { failureMessage, readConfig } from "./support/config.js"
import { tempDir } from "./support/tempDir.js"

const secret = "s3cret-pw"

const refusal = (name: string, shown: string) =>
  `${name}="${shown}" carries credentials (user:password@), which big3 does not send and would show in errors and ` +
  `logs: remove them and give the upstream's key in its own setting`

describe("URL credentials", () => {
  it.effect("GEMINI_BASE_URL, OPENAI_REALTIME_URL, OBSERVABILITY_SERVER_URL and ANTHROPIC_BASE_URL refuse them, redacted", () =>
    Effect.gen(function*() {
      const cases = [
        ["GEMINI_BASE_URL", Gemini.config, `https://me:${secret}@gemini.example`, "https://<redacted>@gemini.example/"],
        ["OPENAI_REALTIME_URL", Realtime.config, `wss://me:${secret}@rt.example/v1/realtime`, "wss://<redacted>@rt.example/v1/realtime"],
        ["OBSERVABILITY_SERVER_URL", Observability.config, `http://me:${secret}@127.0.0.1:9/events`, "http://<redacted>@127.0.0.1:9/events"],
        ["ANTHROPIC_BASE_URL", ClaudeAgentSdk.config, `https://${secret}@anthropic.example`, "https://<redacted>@anthropic.example/"]
      ] as const
      for (const [name, config, value, shown] of cases) {
        const message = failureMessage(yield* readConfig<unknown>(config, { [name]: value }))
        assert.strictEqual(message, refusal(name, shown))
      }
    }))

  it.effect("an upstream URL with a query or a fragment (a ?key=) is refused, and the query is not echoed", () =>
    Effect.gen(function*() {
      const cases = [
        ["GEMINI_BASE_URL", Gemini.config, `http://127.0.0.1:9/?key=${secret}`, "http://127.0.0.1:9/?…"],
        ["GEMINI_BASE_URL", Gemini.config, `https://gemini.example/v1#${secret}`, "https://gemini.example/v1#…"],
        ["ANTHROPIC_BASE_URL", ClaudeAgentSdk.config, `https://anthropic.example?key=${secret}`, "https://anthropic.example/?…"],
        ["OPENAI_REALTIME_URL", Realtime.config, `ws://127.0.0.1:9/v1/realtime?api_key=${secret}`, "ws://127.0.0.1:9/v1/realtime?…"],
        ["OPENAI_REALTIME_URL", Realtime.config, "ws://127.0.0.1:9/v1/realtime#x", "ws://127.0.0.1:9/v1/realtime#…"],
        ["OBSERVABILITY_SERVER_URL", Observability.config, `http://127.0.0.1:9/events?key=${secret}`, "http://127.0.0.1:9/events?…"]
      ] as const
      for (const [name, config, value, shown] of cases) {
        const message = failureMessage(yield* readConfig<unknown>(config, { [name]: value }))
        assert.strictEqual(
          message,
          `${name}="${shown}" is not valid: it takes no query or fragment, since big3 adds to it and a key there ` +
            `would show in errors, logs and events; give the upstream's key in its own setting`
        )
      }
      // The library's option too.
      const option = yield* Effect.flip(ObservabilityOptions.resolve({ url: `http://127.0.0.1:9/events?key=${secret}` }))
      assert.strictEqual(
        option.message,
        `url (OBSERVABILITY_SERVER_URL) must not carry a query or fragment (big3 adds /batch to it, and a key there ` +
          `would show in errors and the spool), got "http://127.0.0.1:9/events?…"`
      )
    }))

  it.effect("a malformed URL with credentials is not echoed with them either", () =>
    Effect.gen(function*() {
      const message = failureMessage(yield* readConfig(Gemini.config, { GEMINI_BASE_URL: `http://me:${secret}/x@` }))
      assert.strictEqual(
        message,
        `GEMINI_BASE_URL="http://<redacted>@" is not valid: expected an http(s) URL such as https://generativelanguage.googleapis.com`
      )
    }))

  it.effect("Observability options given in code refuse them too, redacted", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(ObservabilityOptions.resolve({ url: `http://me:${secret}@127.0.0.1:9/events` }))
      assert.strictEqual(
        error.message,
        `url (OBSERVABILITY_SERVER_URL) must not carry credentials (user:password@), got "http://<redacted>@127.0.0.1:9/events"`
      )
    }))

  it.scopedLive("big3 events send with credentials in the URL exits 78, and neither stderr nor the spool holds them", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const stateDir = yield* tempDir("big3-url-credentials-")
      const url = `${sandbox.url.replace("http://", `http://me:${secret}@`)}/events`
      const result = yield* big3(["events", "send", "--type", "Stop"], { BIG3_STATE_DIR: stateDir, OBSERVABILITY_SERVER_URL: url })
      assert.strictEqual(result.code, 78)
      assert.strictEqual(
        result.stderr,
        `big3: configuration error: ${refusal("OBSERVABILITY_SERVER_URL", url.replace(`me:${secret}`, "<redacted>"))}`
      )
      assert.strictEqual(result.stdout, "")
      assert.deepStrictEqual(yield* sandbox.events, [])
      const files = fs.readdirSync(stateDir, { recursive: true, encoding: "utf8" })
      for (const file of files) {
        const full = path.join(stateDir, file)
        if (fs.statSync(full).isFile()) assert.notInclude(fs.readFileSync(full, "latin1"), secret, file)
      }
    }))
})
