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
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { version } from "../src/cli/version.js"
import * as Sandbox from "../src/Sandbox.js"
import { baseEnv } from "./support/bin.js"
import { eventsSink } from "./support/sink.js"

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

describe("the bundled bin", () => {
  it.scopedLive("answers --version, sends an event and asks Gemini, as the sources do", () =>
    Effect.gen(function*() {
      const bin = yield* bundled
      const versioned = yield* node([bin, "--version"])
      assert.deepStrictEqual(versioned, { code: 0, stdout: `${version}\n\n`, stderr: "" })

      const server = yield* eventsSink()
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
