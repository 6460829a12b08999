/**
 * Issue 11's storage and secrets cases, each against the real client: an echoed API key, a
 * store from a newer big3, a spool bound (`BIG3_EVENTS_SPOOL_MAX`), a disk that cannot be written.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as SqlClient from "@effect/sql/SqlClient"
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { run } from "../src/cli/app.js"
import * as Options from "../src/observability/Options.js"
import * as Store from "../src/Store.js"
import { captureConsole, captureLogs } from "./support/capture.js"

const tempDirs: Array<string> = []
const tempStateDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-hardening-"))
  tempDirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
})

/** `big3 args…` in-process; what it printed and what it logged. */
const big3 = (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const logs = captureLogs()
  return captureConsole(run(["node", "big3", ...args])).pipe(
    Effect.map(({ exit, stderr, stdout }) => ({
      code: Exit.isSuccess(exit) ? exit.value : -1,
      stdout,
      stderr,
      logs: logs.lines.join("\n")
    })),
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })),
    Effect.provide(logs.layer),
    Effect.provide(NodeContext.layer)
  )
}

/**
 * A bare observability server, not big3's sandbox: it refuses every event with 400 and echoes
 * the `X-API-Key` it was sent in its body and in a header, as a careless proxy might.
 */
const echoingServer = Effect.acquireRelease(
  Effect.async<http.Server & { url: string }>((resume) => {
    const server = http.createServer((request, response) => {
      request.resume()
      request.on("end", () => {
        const key = String(request.headers["x-api-key"] ?? "")
        response.writeHead(400, { "content-type": "application/json", "x-echo-key": key })
        response.end(JSON.stringify({ error: `Missing required fields (key ${key} is not allowed here)` }))
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resume(Effect.succeed(Object.assign(server, { url: `http://127.0.0.1:${port}/events` })))
    })
  }),
  (server) => Effect.async<void>((resume) => void server.close(() => resume(Effect.void)))
)

const secret = "sk-observability-4f9c2d7e1b"

describe("Observability hardening", () => {
  it.scopedLive("an echoed X-API-Key reaches neither the dead-letter table, nor stderr, nor dead-letters --json", () =>
    Effect.gen(function*() {
      const server = yield* echoingServer
      const stateDir = tempStateDir()
      const env = {
        BIG3_STATE_DIR: stateDir,
        OBSERVABILITY_SERVER_URL: server.url,
        OBSERVABILITY_API_KEY: secret,
        BIG3_TIMEOUT_GRACEFUL_SHUTDOWN: "2"
      }
      const sent = yield* big3(["events", "send", "--type", "Stop"], env)
      assert.strictEqual(sent.code, 1)
      assert.match(sent.stderr, /refused event .* it was dead-lettered: InvalidRequest: .*key <redacted> is not allowed here/)
      const letters = yield* big3(["events", "dead-letters", "--json"], env)
      assert.strictEqual(letters.code, 0, letters.stderr)
      const parsed: { deadLetters: Array<{ reason: string }> } = JSON.parse(letters.stdout)
      assert.strictEqual(parsed.deadLetters.length, 1)
      assert.include(parsed.deadLetters[0]!.reason, "key <redacted> is not allowed here")
      for (const text of [sent.stdout, sent.stderr, sent.logs, letters.stdout, letters.stderr, letters.logs]) {
        assert.notInclude(text, secret)
      }
      const stored = yield* Effect.flatMap(
        SqlClient.SqlClient,
        (sql) => sql<{ reason: string; body: string }>`SELECT reason, body FROM observability_dead_letter`
      ).pipe(Effect.provide(Store.layer({ filename: path.join(stateDir, "big3.db") })), Effect.scoped, Effect.orDie)
      assert.strictEqual(stored.length, 1)
      assert.notInclude(JSON.stringify(stored), secret)
      assert.include(stored[0]!.reason, "<redacted>")
    }))
})

describe("BIG3_EVENTS_SPOOL_MAX", () => {
  it("reads rows, bytes, or both", () => {
    assert.deepStrictEqual(Options.parseSpoolMax("100000"), { rows: 100_000 })
    assert.deepStrictEqual(Options.parseSpoolMax("50MB"), { bytes: 50_000_000 })
    assert.deepStrictEqual(Options.parseSpoolMax("512 KiB"), { bytes: 524_288 })
    assert.deepStrictEqual(Options.parseSpoolMax("1000, 2MiB"), { rows: 1000, bytes: 2_097_152 })
    assert.strictEqual(Options.parseSpoolMax("0"), undefined)
    assert.strictEqual(Options.parseSpoolMax("lots"), undefined)
    assert.strictEqual(Options.parseSpoolMax("5 parsecs"), undefined)
    assert.strictEqual(Options.parseSpoolMax("1,2"), undefined)
  })
})
