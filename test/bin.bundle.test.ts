/**
 * The shipped bin is the esbuild bundle (scripts/bundle.mjs), not the sources the other CLI tests
 * run through tsx: bundling can break what the sources get right (a chunk that leaves out a
 * module's side effects, an external that does not resolve). This test bundles the bin into a
 * directory of its own under dist/ and runs real commands through it over loopback, including
 * the events bundle and its code cache (src/cli/compileCache.ts).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { afterAll, beforeAll } from "vitest"
import { version } from "../src/cli/version.js"
import * as Sandbox from "../src/Sandbox.js"
import { baseEnv } from "./support/bin.js"
import { eventsSink } from "./support/sink.js"
import { tempDir } from "./support/tempDir.js"

const root = fileURLToPath(new URL("..", import.meta.url))

interface Ran {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const node = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}) =>
  Effect.async<Ran>((resume) => {
    const child = execFile(
      process.execPath,
      [...args],
      { cwd: root, env: { ...baseEnv(), ...env }, timeout: 60_000 },
      (error, stdout, stderr) => resume(Effect.succeed({ code: error === null ? 0 : child.exitCode, stdout, stderr }))
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

// One bundle for the file, in dist/bin-test-<pid> (under the package, so that the externals
// resolve from its node_modules), removed at the end.
const outdir = path.join(root, "dist", `bin-test-${process.pid}`)
const bin = path.join(outdir, "big3.cjs")
beforeAll(async () => {
  const built = await Effect.runPromise(node(["scripts/bundle.mjs"], { BIG3_BUNDLE_OUTDIR: outdir }))
  assert.strictEqual(built.code, 0, built.stderr)
}, 120_000)
afterAll(() => fs.rmSync(outdir, { recursive: true, force: true }))

/** `big3 events send` through the bundled bin to a fresh sink; the sink's bodies with the run. */
const send = (type: string, env: NodeJS.ProcessEnv, args: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const server = yield* eventsSink()
    const stateDir = yield* tempDir("big3-bundle-")
    const ran = yield* node([bin, "events", "send", "--type", type, ...args], {
      BIG3_STATE_DIR: stateDir,
      OBSERVABILITY_SERVER_URL: server.url,
      ...env
    })
    return { ...ran, bodies: server.bodies }
  })

const typeOf = (body: string): unknown => JSON.parse(body).hook_event_type

/** The cache files in `dir`, with what tells one write from another. */
const cacheFiles = (dir: string) =>
  fs.existsSync(dir)
    ? fs.readdirSync(dir).map((name) => {
      const stat = fs.statSync(path.join(dir, name))
      return { name, ino: stat.ino, mtimeMs: stat.mtimeMs, mode: stat.mode & 0o777 }
    })
    : []

describe("the bundled bin", () => {
  it.scopedLive("answers --version, sends an event and asks Gemini, as the sources do", () =>
    Effect.gen(function*() {
      const versioned = yield* node([bin, "--version"])
      assert.deepStrictEqual(versioned, { code: 0, stdout: `${version}\n\n`, stderr: "" })

      const cache = yield* tempDir("big3-bundle-cache-")
      const sent = yield* send("BundleSmoke", { BIG3_COMPILE_CACHE: cache })
      assert.strictEqual(sent.code, 0, sent.stderr)
      assert.deepStrictEqual(sent.bodies.map(typeOf), ["BundleSmoke"])

      const stateDir = yield* tempDir("big3-bundle-")
      const sandbox = yield* Sandbox.make()
      const asked = yield* node([bin, "gemini", "hello bundle"], {
        GEMINI_API_KEY: "sandbox-key",
        GEMINI_BASE_URL: sandbox.url,
        BIG3_STATE_DIR: stateDir
      })
      assert.deepStrictEqual(asked, { code: 0, stdout: "sandbox answer to: hello bundle\n", stderr: "" })
    }), { timeout: 120_000 })

  it.scopedLive("`events` keeps a code cache: written once, then used; a damaged one is replaced", () =>
    Effect.gen(function*() {
      const parent = yield* tempDir("big3-bundle-cache-")
      const cache = path.join(parent, "cache")
      const env = { BIG3_COMPILE_CACHE: cache }

      const first = yield* send("First", env)
      assert.strictEqual(first.code, 0, first.stderr)
      assert.deepStrictEqual(first.bodies.map(typeOf), ["First"])
      const written = cacheFiles(cache)
      assert.strictEqual(written.length, 1)
      assert.match(written[0]!.name, /^events\.cjs-[0-9a-f]{16}-v\d+\.\d+\.\d+-\w+-send\.v8$/)
      assert.strictEqual(written[0]!.mode, 0o600)
      assert.strictEqual(fs.statSync(cache).mode & 0o777, 0o700)

      // Accepted: V8 took it, so nothing was written again.
      const second = yield* send("Second", env)
      assert.strictEqual(second.code, 0, second.stderr)
      assert.deepStrictEqual(second.bodies.map(typeOf), ["Second"])
      assert.deepStrictEqual(cacheFiles(cache), written)

      // Another V8 flag set (`stats` keeps the optimising compiler) gets a file of its own.
      const stats = yield* node([bin, "events", "stats", "--json"], { ...env, BIG3_STATE_DIR: parent })
      assert.strictEqual(stats.code, 0, stats.stderr)
      assert.deepStrictEqual(cacheFiles(cache).map((file) => file.name.replace(/^.*-/, "")).sort(), ["events.v8", "send.v8"])

      // One byte of the payload damaged: refused by its digest, the event still goes, and a good
      // cache replaces it.
      const file = path.join(cache, written[0]!.name)
      const bytes = fs.readFileSync(file)
      bytes[bytes.length - 100] = bytes[bytes.length - 100]! ^ 0xff
      fs.writeFileSync(file, bytes)
      const damaged = yield* send("Damaged", env)
      assert.strictEqual(damaged.code, 0, damaged.stderr)
      assert.deepStrictEqual(damaged.bodies.map(typeOf), ["Damaged"])
      const replaced = fs.readFileSync(file)
      assert.notDeepEqual(replaced, bytes)
      const replacedFiles = cacheFiles(cache)
      const again = yield* send("Again", env)
      assert.strictEqual(again.code, 0, again.stderr)
      assert.deepStrictEqual(cacheFiles(cache), replacedFiles)
    }), { timeout: 120_000 })

  it.scopedLive("a cache directory others can write to is not used, and the cache can be turned off", () =>
    Effect.gen(function*() {
      const open = yield* tempDir("big3-bundle-cache-")
      fs.chmodSync(open, 0o777)
      const shared = yield* send("Shared", { BIG3_COMPILE_CACHE: open })
      assert.strictEqual(shared.code, 0, shared.stderr)
      assert.deepStrictEqual(shared.bodies.map(typeOf), ["Shared"])
      assert.deepStrictEqual(cacheFiles(open), [])

      const parent = yield* tempDir("big3-bundle-cache-")
      const off = yield* send("Off", { BIG3_COMPILE_CACHE: path.join(parent, "cache"), BIG3_DISABLE_COMPILE_CACHE: "1" })
      assert.strictEqual(off.code, 0, off.stderr)
      assert.deepStrictEqual(off.bodies.map(typeOf), ["Off"])
      assert.isFalse(fs.existsSync(path.join(parent, "cache")))
    }), { timeout: 120_000 })

  it.scopedLive("the events bundle sends over HTTP/1.1 without loading node:http2 or node:tls", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("big3-bundle-modules-")
      const preload = path.join(dir, "modules.cjs")
      const loaded = path.join(dir, "loaded.json")
      fs.writeFileSync(
        preload,
        `process.on("exit", () => require("node:fs").writeFileSync(${JSON.stringify(loaded)}, JSON.stringify(process.moduleLoadList)))\n`
      )
      const server = yield* eventsSink()
      const ran = yield* node(["--require", preload, bin, "events", "send", "--type", "Http1"], {
        BIG3_STATE_DIR: dir,
        BIG3_COMPILE_CACHE: path.join(dir, "cache"),
        OBSERVABILITY_SERVER_URL: server.url
      })
      assert.strictEqual(ran.code, 0, ran.stderr)
      assert.deepStrictEqual(server.bodies.map(typeOf), ["Http1"])
      const modules: ReadonlyArray<string> = JSON.parse(fs.readFileSync(loaded, "utf8"))
      assert.include(modules, "NativeModule net")
      assert.notInclude(modules, "NativeModule http2")
      assert.notInclude(modules, "NativeModule tls")
    }), { timeout: 120_000 })

  it.scopedLive("a setting the events bundle leaves out runs the whole program (here /metrics)", () =>
    Effect.gen(function*() {
      const parent = yield* tempDir("big3-bundle-cache-")
      const cache = path.join(parent, "cache")
      const served = yield* send("Metrics", { BIG3_COMPILE_CACHE: cache, BIG3_METRICS_PORT: "0" })
      assert.strictEqual(served.code, 0, served.stderr)
      assert.include(served.stderr, "serving metrics at http://127.0.0.1:")
      assert.deepStrictEqual(served.bodies.map(typeOf), ["Metrics"])
      // The whole program keeps no code cache.
      assert.isFalse(fs.existsSync(cache))
    }), { timeout: 120_000 })

  it.scopedLive("`events` help and usage errors are the whole program's", () =>
    Effect.gen(function*() {
      const cache = yield* tempDir("big3-bundle-cache-")
      const cases = [
        ["events", "send", "--help"],
        ["events", "dead-letters", "--help"],
        ["events", "send"],
        ["events", "send", "--type", "X", "--bogus"],
        ["events", "stats", "extra"]
      ]
      for (const args of cases) {
        const bundled = yield* node([bin, ...args], { BIG3_COMPILE_CACHE: cache })
        // BIG3_DATABASE_URL (blank: the default store) sends the command to the whole program.
        const whole = yield* node([bin, ...args], { BIG3_COMPILE_CACHE: cache, BIG3_DATABASE_URL: "" })
        assert.deepStrictEqual(bundled, whole, args.join(" "))
      }
    }), { timeout: 120_000 })
})
