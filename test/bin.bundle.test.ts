/**
 * The shipped bin is the esbuild bundle (scripts/bundle.mjs), not the sources the other CLI tests
 * run through tsx: bundling can break what the sources get right (a chunk that leaves out a
 * module's side effects, an external that does not resolve). This test bundles the bin into a
 * directory of its own under dist/ and runs real commands through it over loopback.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as http from "node:http"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { version } from "../src/cli/version.js"
import * as Sandbox from "../src/Sandbox.js"
import { baseEnv } from "./support/bin.js"

const root = fileURLToPath(new URL("..", import.meta.url))

interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const node = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.async<Ran>((resume) => {
    const child = execFile(
      process.execPath,
      [...args],
      { cwd: root, env: { ...baseEnv(), ...env }, timeout: 60_000 },
      (error, stdout, stderr) => resume(Effect.succeed({ code: error === null ? 0 : child.exitCode, stdout, stderr }))
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** The bundle in dist/bin-test-<pid>, removed with the scope. */
const bundled = Effect.acquireRelease(
  Effect.gen(function*() {
    const outdir = path.join(root, "dist", `bin-test-${process.pid}`)
    const built = yield* node(["scripts/bundle.mjs"], { BIG3_BUNDLE_OUTDIR: outdir })
    assert.strictEqual(built.code, 0, built.stderr)
    return path.join(outdir, "big3.js")
  }),
  (bin) => Effect.sync(() => fs.rmSync(path.dirname(bin), { recursive: true, force: true }))
)

/** A bare events server on loopback: records each POST body, answers 200. */
const sink = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly bodies: Array<string>; readonly server: http.Server }>((resume) => {
    const bodies: Array<string> = []
    const server = http.createServer((request, response) => {
      let body = ""
      request.on("data", (chunk: Buffer) => (body += chunk.toString()))
      request.on("end", () => {
        bodies.push(body)
        response.writeHead(200, { "content-type": "application/json" })
        response.end("{}")
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      resume(Effect.succeed({ url: `http://127.0.0.1:${port}/events`, bodies, server }))
    })
  }),
  ({ server }) =>
    Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
    })
)

describe("the bundled bin", () => {
  it.scopedLive("answers --version, sends an event and asks Gemini, as the sources do", () =>
    Effect.gen(function*() {
      const bin = yield* bundled
      const versioned = yield* node([bin, "--version"])
      assert.deepStrictEqual(versioned, { code: 0, stdout: `${version}\n\n`, stderr: "" })

      const server = yield* sink
      const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-bundle-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(stateDir, { recursive: true, force: true })))
      const sent = yield* node([bin, "events", "send", "--type", "BundleSmoke"], {
        BIG3_STATE_DIR: stateDir,
        OBSERVABILITY_SERVER_URL: server.url
      })
      assert.strictEqual(sent.code, 0, sent.stderr)
      assert.strictEqual(server.bodies.length, 1)
      const event: { hook_event_type?: string } = JSON.parse(server.bodies[0]!)
      assert.strictEqual(event.hook_event_type, "BundleSmoke")

      const sandbox = yield* Sandbox.make()
      const asked = yield* node([bin, "gemini", "hello bundle"], {
        GEMINI_API_KEY: "sandbox-key",
        GEMINI_BASE_URL: sandbox.url,
        BIG3_STATE_DIR: stateDir
      })
      assert.deepStrictEqual(asked, { code: 0, stdout: "sandbox answer to: hello bundle\n", stderr: "" })
    }), { timeout: 180_000 })
})
