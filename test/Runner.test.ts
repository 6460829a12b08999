/**
 * A runner in this process (`Runner.layer`, embedded: SQLite in a temp state directory, the
 * scripted backend, events to a stub), driven through its API with `Runner.connect`: real HTTP
 * over 127.0.0.1 with the token of runner.json, errors crossing the wire as the taxonomy's own.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Agents from "../src/Agents.js"
import * as CircuitBreaker from "../src/CircuitBreaker.js"
import { OperationTimeout, QuotaExhausted, RateLimited } from "../src/Errors.js"
import * as Observability from "../src/Observability.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Runner from "../src/Runner.js"
import * as Cluster from "../src/runner/Cluster.js"
import { AgentsError } from "../src/runner/Protocol.js"
import * as Store from "../src/Store.js"
import { tempDir as tempDirIn } from "./support/tempDir.js"
import { waitFor } from "./support/waitFor.js"

const tempDir = tempDirIn("big3-runner-")

/** A runner on `stateDir` for the scope, and its client. */
const runnerOn = (stateDir: string, events: Array<Observability.EventInput>) =>
  Effect.gen(function*() {
    const config = ReliabilityConfig.layerWith({})
    const foundation = Layer.mergeAll(
      config,
      CircuitBreaker.layer.pipe(Layer.provide(config)),
      Layer.mock(Observability.Observability, {
        emit: (event) => Effect.sync(() => void events.push(event)),
        flush: Effect.void
      }),
      Agents.scriptedBackend(),
      NodeFileSystem.layer,
      NodePath.layer,
      Store.layer({ filename: Store.databasePath(stateDir) })
    )
    const provider = ConfigProvider.fromMap(new Map([["BIG3_STATE_DIR", stateDir]]))
    yield* Layer.build(Runner.layer().pipe(Layer.provide(foundation), Layer.provide(Layer.setConfigProvider(provider))))
    return Option.getOrThrow(yield* Runner.connect(stateDir))
  })

describe("Runner", () => {
  it.scopedLive("serves create, command, result, list and delete over its API; each agent lives on it", () =>
    Effect.gen(function*() {
      const stateDir = yield* tempDir
      const events: Array<Observability.EventInput> = []
      const runner = yield* runnerOn(stateDir, events)

      const info = yield* runner.info
      assert.deepStrictEqual([info.pid, info.store, info.runner, info.agents], [
        process.pid,
        `SQLite at ${path.join(stateDir, "big3.db")}`,
        undefined,
        []
      ])

      const created = yield* runner.create({ type: "coder" })
      assert.match(created.name, /^agent-[0-9a-f]{8}$/)
      assert.strictEqual(created.directory, path.join(fs.realpathSync(stateDir), "agents", created.name))
      assert.deepStrictEqual((yield* runner.info).agents, [created.name])

      const { operatorFile } = yield* runner.command(created.name, "over the wire")
      assert.strictEqual(path.dirname(operatorFile), created.directory)
      const done = yield* waitFor(runner.result(created.name, operatorFile), (found) => /^- Status: completed$/m.test(found.content))
      assert.strictEqual(done.file, operatorFile)
      assert.include(done.content, "## Result\n\nDone: over the wire")
      assert.strictEqual(done.content, fs.readFileSync(operatorFile, "utf8"))

      const listed = yield* runner.list
      assert.deepStrictEqual(listed.map((agent) => [agent.name, agent.type, agent.runningCommands]), [[created.name, "coder", 0]])
      assert.instanceOf(listed[0]!.createdAt, Date)

      yield* runner.delete(created.name, { keepDirectory: false })
      assert.isFalse(fs.existsSync(created.directory))
      assert.deepStrictEqual(yield* runner.list, [])
      assert.deepStrictEqual(
        events.map((event) => event.hook_event_type),
        ["AgentCreated", "AgentCommandStarted", "AgentCommandFinished", "AgentDeleted"]
      )
    }), { timeout: 60_000 })

  it.scopedLive("failures cross the wire as the taxonomy's errors: NotFound, InvalidAgentName, AgentExists, InvalidRequest", () =>
    Effect.gen(function*() {
      const stateDir = yield* tempDir
      const runner = yield* runnerOn(stateDir, [])
      const unknown = yield* Effect.flip(runner.result("ghost"))
      assert.deepStrictEqual([unknown._tag, unknown.message, unknown.retryable], ["NotFound", `no agent named "ghost"`, false])
      const invalid = yield* Effect.flip(runner.create({ name: "../escape", type: "coder" }))
      assert.strictEqual(invalid._tag, "InvalidAgentName")
      // A runner validates new names the one way the library does: no leading '-'.
      const option = yield* Effect.flip(runner.create({ name: "-x", type: "coder" }))
      assert.deepStrictEqual([option._tag, option.message], [
        "InvalidAgentName",
        `invalid agent name "-x": it starts with '-', which a command line reads as an option; ` +
        `use 1–64 letters, digits, '-' or '_', not starting with '-'`
      ])
      yield* runner.create({ name: "twin", type: "coder" })
      const exists = yield* Effect.flip(runner.create({ name: "twin", type: "coder" }))
      assert.strictEqual(exists._tag, "AgentExists")
      const empty = yield* Effect.flip(runner.command("twin", "   "))
      assert.deepStrictEqual([empty._tag, empty.message], ["InvalidRequest", "the prompt is empty"])
    }), { timeout: 60_000 })

  it.effect("errors that carry durations survive the wire (encoded as Schema.Duration), as the same classes", () =>
    Effect.sync(() => {
      const trip = (error: Agents.AgentsError) =>
        Schema.decodeUnknownSync(AgentsError)(JSON.parse(JSON.stringify(Schema.encodeSync(AgentsError)(error))))
      const timeout = new OperationTimeout({
        service: "agents",
        operation: "agent_creation",
        timeout: Duration.seconds(60),
        message: "agent_creation timed out after 60s"
      })
      const back = trip(timeout)
      assert.instanceOf(back, OperationTimeout)
      assert.deepStrictEqual(back, timeout)
      const limited = new RateLimited({ service: "anthropic", status: 429, retryAfter: Duration.millis(1500), message: "slow down" })
      assert.deepStrictEqual(trip(limited), limited)
      assert.instanceOf(trip(limited), RateLimited)
      const quota = new QuotaExhausted({
        service: "gemini",
        status: 429,
        quotaId: "GenerateRequestsPerDayPerProjectPerModel",
        retryAfter: Duration.hours(3),
        message: "daily quota exhausted"
      })
      assert.deepStrictEqual(trip(quota), quota)
      assert.instanceOf(trip(quota), QuotaExhausted)
    }), { timeout: 60_000 })

  it.effect("BIG3_RUNNER_HOST: a host name or an address others can dial (IPv6 bare or bracketed); not 0.0.0.0, ::, a port or a URL", () =>
    Effect.gen(function*() {
      const read = (value: string) =>
        Effect.either(Effect.withConfigProvider(
          Runner.hostConfig,
          ConfigProvider.fromMap(new Map([["BIG3_RUNNER_HOST", value]]))
        )).pipe(Effect.map(Either.match({
          onLeft: (error) => `refused: ${String(error)}`,
          onRight: (host) => host
        })))
      const accepted = ["", " runner-1.internal ", "10.0.0.7", "::1", "[fd00::7]"]
      assert.deepStrictEqual(yield* Effect.forEach(accepted, read), ["127.0.0.1", "runner-1.internal", "10.0.0.7", "::1", "fd00::7"])
      const everywhere = "expected an address other runners can reach; this one means every address of this machine"
      const malformed = "expected a host name or an IP address that other runners can reach (no scheme, no port)"
      assert.deepStrictEqual(yield* Effect.forEach(["0.0.0.0", "::", "[0:0::0]", "127.0.0.1:9000", "http://runner", "two words"], read), [
        `refused: (Invalid data at BIG3_RUNNER_HOST: "BIG3_RUNNER_HOST: ${everywhere}, got \"0.0.0.0\"")`,
        `refused: (Invalid data at BIG3_RUNNER_HOST: "BIG3_RUNNER_HOST: ${everywhere}, got \"::\"")`,
        `refused: (Invalid data at BIG3_RUNNER_HOST: "BIG3_RUNNER_HOST: ${everywhere}, got \"[0:0::0]\"")`,
        `refused: (Invalid data at BIG3_RUNNER_HOST: "BIG3_RUNNER_HOST: ${malformed}, got \"127.0.0.1:9000\"")`,
        `refused: (Invalid data at BIG3_RUNNER_HOST: "BIG3_RUNNER_HOST: ${malformed}, got \"http://runner\"")`,
        `refused: (Invalid data at BIG3_RUNNER_HOST: "BIG3_RUNNER_HOST: ${malformed}, got \"two words\"")`
      ])
      // What the others dial (the cluster writes http://host:port): an IPv6 address in brackets.
      assert.deepStrictEqual(["127.0.0.1", "runner-1.internal", "::1", "fd00::7"].map(Cluster.dialable), [
        "127.0.0.1",
        "runner-1.internal",
        "[::1]",
        "[fd00::7]"
      ])
    }))
})

