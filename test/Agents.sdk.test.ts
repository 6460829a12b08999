/**
 * The Claude Agent SDK adapter against the loopback Sandbox's Anthropic Messages route: the real
 * Claude Code binary, no network, no real key.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as os from "node:os"
import * as nodePath from "node:path"
import * as Agents from "../src/Agents.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import * as Observability from "../src/Observability.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Sandbox from "../src/Sandbox.js"

/** The native Claude Code binary the SDK spawns, from its per-platform optional dependency. */
const binaryAvailable = (() => {
  try {
    const require = createRequire(import.meta.url)
    const manifest = require.resolve(`@anthropic-ai/claude-agent-sdk-${process.platform}-${process.arch}/package.json`)
    return fs.existsSync(nodePath.join(nodePath.dirname(manifest), "claude"))
  } catch {
    return false
  }
})()
const skipReason = `no Claude Code binary for ${process.platform}-${process.arch} ` +
  `(@anthropic-ai/claude-agent-sdk-${process.platform}-${process.arch} is not installed)`

/** Records every event; only `emit` and `flush` are used by the agents module. */
const observabilityStub = (events: Array<Observability.EventInput>) =>
  Layer.mock(Observability.Observability, {
    emit: (event) => Effect.sync(() => void events.push(event)),
    flush: Effect.void
  })

/** Processes whose working directory is `cwd` or below it (Linux `/proc`; -1 elsewhere). */
const processesIn = (cwd: string): number => {
  if (process.platform !== "linux") return -1
  let count = 0
  for (const pid of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue
    try {
      const dir = fs.readlinkSync(`/proc/${pid}/cwd`)
      if (dir === cwd || dir.startsWith(`${cwd}/`)) count++
    } catch {
      // Gone, or not ours to read.
    }
  }
  return count
}

/** A temp dir, removed once no Claude Code process works in it any more. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(nodePath.join(os.tmpdir(), "big3-sdk-"))),
  (dir) =>
    Effect.repeat(Effect.sync(() => processesIn(dir)), { until: (count) => count <= 0, schedule: Schedule.spaced("20 millis") }).pipe(
      Effect.timeout("3 seconds"),
      Effect.ignore,
      Effect.zipRight(Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
    )
)

interface Harness {
  readonly sandbox: Sandbox.Service
  readonly dir: string
  readonly events: Array<Observability.EventInput>
  readonly backend: Layer.Layer<Agents.AgentBackend>
}

/** A sandbox, a temp HOME for Claude Code, and the adapter pointed at the sandbox (no API retries unless `maxRetries`). */
const harnessWith = (options: { readonly maxRetries?: number }): Effect.Effect<Harness, unknown, Scope.Scope> => Effect.gen(function*() {
  const sandbox = yield* Sandbox.make()
  const dir = yield* tempDir
  const home = nodePath.join(dir, "home")
  fs.mkdirSync(home)
  const events: Array<Observability.EventInput> = []
  const backend = Agents.claudeAgentSdkWith({
    baseUrl: sandbox.url,
    apiKey: Redacted.make("sandbox-key"),
    model: "claude-sonnet-4-5",
    permissionMode: "acceptEdits",
    maxRetries: options.maxRetries ?? 0,
    exitGrace: "5 seconds",
    env: {
      HOME: home,
      CLAUDE_CONFIG_DIR: nodePath.join(home, ".claude"),
      // Nothing but the Messages route: no telemetry, error reports, update checks or other traffic.
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      DISABLE_TELEMETRY: "1",
      DISABLE_AUTOUPDATER: "1",
      DISABLE_ERROR_REPORTING: "1",
      ANTHROPIC_AUTH_TOKEN: undefined
    }
  }).pipe(Layer.provide(observabilityStub(events)), Layer.orDie)
  return { sandbox, dir, events, backend }
})

const harness = harnessWith({})

const cwdIn = (h: Harness, name: string) => {
  const cwd = nodePath.join(h.dir, "agents", name)
  fs.mkdirSync(cwd, { recursive: true })
  return cwd
}

describe.skipIf(!binaryAvailable)(`Agents.claudeAgentSdk over the Sandbox${binaryAvailable ? "" : ` (skipped: ${skipReason})`}`, () => {
  it.live("startSession runs a greeting query against POST /v1/messages and returns its session", () =>
    Effect.scoped(Effect.gen(function*() {
      const h = yield* harness
      const session = yield* Effect.flatMap(Agents.AgentBackend, (backend) =>
        backend.startSession({ name: "greeter", type: "claude_code", cwd: cwdIn(h, "greeter") })).pipe(Effect.provide(h.backend))
      assert.match(session.sessionId, /^[0-9a-f-]{36}$/)
      assert.match(session.greeting, /^sandbox answer to: /)
      const requests = yield* h.sandbox.requestsFor("anthropic")
      assert.isAtLeast(requests.length, 1)
      const first = requests[0]!
      assert.strictEqual(first.method, "POST")
      assert.strictEqual(first.path, "/v1/messages")
      assert.strictEqual(first.headers["x-api-key"], "<redacted>")
      assert.strictEqual(first.headers["anthropic-version"], "2023-06-01")
      assert.strictEqual((first.body as { stream?: boolean }).stream, true)
      assert.strictEqual((first.body as { model?: string }).model, "claude-sonnet-4-5")
      assert.strictEqual(first.headers["x-claude-code-session-id"], session.sessionId)
    })), 30_000)

  it.live("run resumes the session, streams messages and ends with a Result", () =>
    Effect.scoped(Effect.gen(function*() {
      const h = yield* harness
      const cwd = cwdIn(h, "runner")
      const messages = yield* Effect.gen(function*() {
        const backend = yield* Agents.AgentBackend
        const session = yield* backend.startSession({ name: "runner", type: "claude_code", cwd })
        const messages = yield* Stream.runCollect(backend.run({ sessionId: session.sessionId, prompt: "list the files", cwd }))
        return { session, messages: Array.from(messages) }
      }).pipe(Effect.provide(h.backend))
      const last = messages.messages.at(-1)!
      assert.strictEqual(last._tag, "Result")
      if (last._tag === "Result") {
        assert.isFalse(last.isError)
        assert.match(last.text, /list the files/)
        assert.strictEqual(last.subtype, "success")
      }
      assert.isTrue(messages.messages.some((message) => message._tag === "Text"))
      const requests = yield* h.sandbox.requestsFor("anthropic")
      // The greeting ran without tools; the command has them.
      assert.strictEqual((requests[0]!.body as { tools?: ReadonlyArray<unknown> }).tools?.length ?? 0, 0)
      const resumed = requests.at(-1)!.body as { messages: ReadonlyArray<unknown>; tools?: ReadonlyArray<unknown> }
      assert.isAtLeast(resumed.tools?.length ?? 0, 1)
      // The greeting exchange is in the resumed conversation.
      assert.isAtLeast(resumed.messages.length, 3)
      assert.strictEqual(requests.at(-1)!.headers["x-claude-code-session-id"], messages.session.sessionId)
      // Claude Code hooks reached Observability.
      assert.isTrue(h.events.some((event) => event.hook_event_type === "Stop" && event.session_id === messages.session.sessionId))
    })), 30_000)

  it.live("a 429 answer is RateLimited, a 401 is Unauthorized, a 529 is ServiceUnavailable", () =>
    Effect.scoped(Effect.gen(function*() {
      const h = yield* harness
      const cwd = cwdIn(h, "faulty")
      const start = Effect.flatMap(Agents.AgentBackend, (backend) => backend.startSession({ name: "faulty", type: "claude_code", cwd }))
        .pipe(Effect.provide(h.backend), Effect.flip)
      yield* h.sandbox.setPlan("anthropic", [{ status: 429, retryAfter: "1 second" }])
      const limited = yield* start
      assert.strictEqual(limited._tag, "RateLimited")
      assert.strictEqual(limited.retryable, true)
      yield* h.sandbox.setPlan("anthropic", [401])
      const denied = yield* start
      assert.strictEqual(denied._tag, "Unauthorized")
      assert.strictEqual(denied.retryable, false)
      assert.notInclude(denied.message, "sandbox-key")
      yield* h.sandbox.setPlan("anthropic", [529])
      const overloaded = yield* start
      assert.strictEqual(overloaded._tag, "ServiceUnavailable")
    })), 30_000)

  it.live("a command's 429 after Claude Code's own retry is RateLimited with Claude Code's retry delay as retryAfter", () =>
    Effect.scoped(Effect.gen(function*() {
      const h = yield* harnessWith({ maxRetries: 1 })
      const cwd = cwdIn(h, "limited")
      const error = yield* Effect.gen(function*() {
        const backend = yield* Agents.AgentBackend
        const session = yield* backend.startSession({ name: "limited", type: "claude_code", cwd })
        yield* h.sandbox.setPlan("anthropic", [{ status: 429, retryAfter: "1 second" }, { status: 429, retryAfter: "1 second" }])
        return yield* Effect.flip(Stream.runDrain(backend.run({ sessionId: session.sessionId, prompt: "work", cwd })))
      }).pipe(Effect.provide(h.backend))
      assert.strictEqual(error._tag, "RateLimited")
      // Claude Code waited at least the server's `retry-after: 1` before its retry, and says so.
      const hint = error._tag === "RateLimited" && error.retryAfter !== undefined ? Duration.toMillis(error.retryAfter) : undefined
      assert.isDefined(hint, error.message)
      assert.isAtLeast(hint!, 1000)
      assert.isBelow(hint!, 5000)
      assert.match(error.message, /it asks to wait [\d.]+s \(until \d{4}-/)
      // The request-id of the answer that ended the turn, which Anthropic asks clients to quote.
      assert.match(error.message, /^anthropic answered HTTP 429 \(request-id req_01[0-9A-Za-z]{22}\): /)
      // The greeting, then the command's first attempt and its one retry.
      assert.strictEqual((yield* h.sandbox.requestsFor("anthropic")).length, 3)
    })), 30_000)

  it.live("interrupting a run aborts Claude Code and waits for it to exit", () =>
    Effect.scoped(Effect.gen(function*() {
      const h = yield* harness
      const cwd = cwdIn(h, "hung")
      yield* Effect.gen(function*() {
        const backend = yield* Agents.AgentBackend
        const session = yield* backend.startSession({ name: "hung", type: "claude_code", cwd })
        yield* h.sandbox.setPlan("anthropic", [{ hang: true }])
        const fiber = yield* Effect.fork(Stream.runDrain(backend.run({ sessionId: session.sessionId, prompt: "wait", cwd })))
        // Wait until Claude Code's request is hanging in the sandbox.
        yield* Effect.repeat(h.sandbox.requestsFor("anthropic"), {
          until: (requests) => requests.length >= 2,
          schedule: Schedule.spaced("50 millis")
        })
        assert.isAbove(processesIn(cwd), 0)
        // Interrupting returns once the SDK has seen Claude Code close its output.
        const exit = yield* Fiber.interrupt(fiber)
        assert.isTrue(Exit.isInterrupted(exit))
        // The process itself is gone a few milliseconds later: wait for it to go (the test's own
        // timeout is the bound), rather than asserting how long that takes.
        yield* Effect.repeat(Effect.sync(() => processesIn(cwd)), {
          until: (count) => count <= 0,
          schedule: Schedule.spaced("20 millis")
        })
        assert.strictEqual(processesIn(cwd), 0)
      }).pipe(Effect.provide(h.backend))
    })), 30_000)

  it.live("the Agents service drives Claude Code end to end: create, command, result", () =>
    Effect.scoped(Effect.gen(function*() {
      const h = yield* harness
      const config = ReliabilityConfig.layerWith({})
      const layer = Agents.layerWith({ agentsDir: nodePath.join(h.dir, "agents") }).pipe(
        Layer.provide(Layer.mergeAll(
          config,
          CircuitBreaker.layer.pipe(Layer.provide(config)),
          observabilityStub(h.events),
          h.backend,
          NodeFileSystem.layer,
          NodePath.layer,
          SqliteClient.layer({ filename: nodePath.join(h.dir, "big3.db") })
        ))
      )
      yield* Effect.gen(function*() {
        const created = yield* Agents.create({ name: "e2e", type: "claude_code" })
        assert.match(created.greeting, /^sandbox answer to: /)
        const { operatorFile } = yield* Agents.command("e2e", "summarise the repository")
        const read = Effect.map(Agents.result("e2e"), (result) => result.content)
        yield* read.pipe(
          Effect.repeat(Schedule.spaced("100 millis").pipe(Schedule.whileInput((text: string) => text.includes("- Status: running")))),
          Effect.timeout("20 seconds")
        )
        const content = yield* read
        assert.include(content, "- Status: completed")
        assert.include(content, "sandbox answer to:")
        assert.strictEqual((yield* Agents.result("e2e")).file, operatorFile)
        yield* Agents.delete("e2e")
      }).pipe(Effect.provide(layer))
      const types = h.events.map((event) => event.hook_event_type)
      for (const type of ["AgentCreated", "AgentCommandStarted", "AgentCommandFinished", "AgentDeleted"]) {
        assert.include(types, type)
      }
    })), 30_000)
})
