/**
 * A server hint longer than the policy's maxDelay fails the call at once, on the real clients over
 * loopback: `big3 events send` against the Sandbox answering `Retry-After: 86400` spools the event
 * and exits at once, saying when to come back, instead of waiting the 60 s cap and asking again.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Sandbox from "../src/Sandbox.js"
import { big3 } from "./support/cli.js"

describe("a server hint beyond maxDelay", () => {
  it.scopedLive("big3 events send: one POST, the event spooled with the RateLimited reason and when to come back, exit 1, no 60 s wait", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const stateDir = yield* Effect.acquireRelease(
        Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "big3-retry-hint-"))),
        (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
      )
      yield* sandbox.setPlan("events", [{ status: 429, retryAfter: "86400 seconds" }])
      const sent = yield* big3(["events", "send", "--type", "Stop"], {
        BIG3_STATE_DIR: stateDir,
        OBSERVABILITY_SERVER_URL: `${sandbox.url}/events`,
        BIG3_TIMEOUT_GRACEFUL_SHUTDOWN: "2"
      })
      assert.strictEqual(sent.code, 1, sent.stderr)
      assert.include(sent.stderr, "spooled")
      assert.include(sent.stderr, "RateLimited")
      // The failure says when to come back, at the default log level.
      const until = /it asks to wait 86400s \(until ([0-9TZ:.-]+)\)/.exec(sent.stderr)
      assert.isNotNull(until, sent.stderr)
      assert.approximately(Date.parse(until![1]!), Date.now() + 86_400_000, 120_000)
      const requests = yield* sandbox.requestsFor("events")
      assert.strictEqual(requests.length, 1)
    }))
})
