/**
 * `big3 voice --text` as a process against a hostile Realtime server (a bare `ws` server written
 * in the test, on 127.0.0.1): how it ends when the server will not keep a session.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { exitCodeOf, spawnBig3 } from "./support/bin.js"
import { isRunning } from "./support/processes.js"
import { bareServer, waitFor } from "./support/wsServer.js"

const tempStateDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "big3-cli-voice-adversary-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

describe("big3 voice against a hostile server", () => {
  it.scopedLive("a server that closes every connection as it opens, stdin open and silent: exit 1 naming the cause, without waiting for input", () =>
    Effect.gen(function*() {
      const server = yield* bareServer()
      const stateDir = yield* tempStateDir
      // Each connection closes as soon as the client has configured it.
      yield* Effect.forkScoped(Effect.forever(Effect.flatMap(server.nextConnection, (connection) =>
        Effect.zipRight(connection.nextOf("session.update"), connection.close(1000, "bye")))))
      const running = yield* spawnBig3(["voice", "--text"], {
        OPENAI_API_KEY: "test-key",
        OPENAI_REALTIME_URL: server.url,
        BIG3_STATE_DIR: stateDir,
        BIG3_RETRY_NETWORK_INITIAL_DELAY: "0.01",
        OBSERVABILITY_SERVER_URL: "http://127.0.0.1:9/events"
      }, { stdin: "pipe" })
      const code = yield* exitCodeOf(running, "25 seconds")
      assert.strictEqual(code, 1, running.stderr())
      assert.strictEqual(running.stderr().trimEnd().split("\n").at(-1), "big3 voice: NetworkError: the Realtime socket closed (code 1000: bye)")
      assert.strictEqual(running.stdout(), "")
      assert.strictEqual(server.upgrades(), 3)
      yield* waitFor("the process to be gone", () => !isRunning(running.pid))
    }))
})
