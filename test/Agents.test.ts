import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as Agents from "../src/Agents.js"
import type * as Sdk from "@anthropic-ai/claude-agent-sdk"
import { hookPayload, toAgentMessages } from "../src/agents/SdkMessages.js"
import { RateLimited, Unauthorized } from "../src/Errors.js"
import { agentsDir, fileContains, sdkAssistant, settle, tempDir, waitForEvent, waitUntil, withAgents } from "./support/agents.js"

// ---------------------------------------------------------------------------------------------

describe("Agents.create", () => {
  it.scoped("creates an agent: directory, session, registry entry and an AgentCreated event", () =>
    withAgents({}, (harness) =>
      Effect.gen(function*() {
        const created = yield* Agents.create({ name: "builder", type: "claude_code" })
        assert.strictEqual(created.name, "builder")
        assert.strictEqual(created.sessionId, "session-builder")
        assert.strictEqual(created.directory, nodePath.join(agentsDir(harness), "builder"))
        assert.isTrue(fs.statSync(created.directory).isDirectory())
        const agents = yield* Agents.list
        assert.deepStrictEqual(agents.map((agent) => [agent.name, agent.type, agent.sessionId]), [
          ["builder", "claude_code", "session-builder"]
        ])
        assert.deepStrictEqual(harness.eventTypes(), ["AgentCreated"])
        const event = harness.events[0]!
        assert.strictEqual(event.source_app, "big3")
        assert.strictEqual(event.session_id, "session-builder")
        assert.strictEqual(event.payload["agent"], "builder")
      })))

  it.scoped("generates a name like agent-<8 hex> when none is given", () =>
    withAgents({}, () =>
      Effect.gen(function*() {
        const created = yield* Agents.create({ type: "claude_code" })
        assert.match(created.name, /^agent-[0-9a-f]{8}$/)
        const agents = yield* Agents.list
        assert.deepStrictEqual(agents.map((agent) => agent.name), [created.name])
      })))

  it.scoped("refuses names that could leave the agents directory or are out of bounds", () =>
    withAgents({}, (harness) =>
      Effect.gen(function*() {
        const names = ["../x", "a/b", "a\\b", ".hidden", "a.b", "", "x".repeat(200), "has space", "..", "/abs"]
        for (const name of names) {
          const result = yield* Effect.either(Agents.create({ name, type: "claude_code" }))
          assert.isTrue(result._tag === "Left", `name ${JSON.stringify(name)} was accepted`)
          if (result._tag === "Left") {
            assert.strictEqual(result.left._tag, "InvalidAgentName", JSON.stringify(name))
            assert.strictEqual(result.left.retryable, false)
          }
        }
        // A 64-character name is fine.
        yield* Agents.create({ name: "x".repeat(64), type: "claude_code" })
        assert.deepStrictEqual((yield* Agents.list).map((agent) => agent.name), ["x".repeat(64)])
        // Nothing escaped: the only entry under the temp dir is the agents directory.
        assert.deepStrictEqual(fs.readdirSync(harness.dir), ["agents"])
        assert.deepStrictEqual(fs.readdirSync(agentsDir(harness)), ["x".repeat(64)])
      })))

  it.scoped("refuses a new name starting with '-', which a command line would read as an option", () =>
    withAgents({}, (harness) =>
      Effect.gen(function*() {
        for (const name of ["-x", "--wait", "-"]) {
          const error = yield* Effect.flip(Agents.create({ name, type: "claude_code" }))
          assert.strictEqual(error._tag, "InvalidAgentName", JSON.stringify(name))
          assert.strictEqual(
            error.message,
            `invalid agent name ${JSON.stringify(name)}: it starts with '-', which a command line reads as an option; ` +
              `use 1–64 letters, digits, '-' or '_', not starting with '-'`
          )
        }
        // A '-' anywhere else is fine.
        yield* Agents.create({ name: "x-", type: "claude_code" })
        assert.deepStrictEqual((yield* Agents.list).map((agent) => agent.name), ["x-"])
        assert.deepStrictEqual(fs.readdirSync(agentsDir(harness)), ["x-"])
      })))

  it.effect("a creation that takes 61 s fails with OperationTimeout at 60 s, not before, and leaves nothing", () =>
    Effect.scoped(Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const interruptedAt = yield* Deferred.make<number>()
      const script: Agents.Script = {
        startSession: (input) =>
          Deferred.succeed(started, undefined).pipe(
            Effect.zipRight(Effect.sleep("61 seconds")),
            Effect.as({ sessionId: "late", greeting: `hello from ${input.name}` }),
            Effect.onInterrupt(() => Effect.flatMap(Clock.currentTimeMillis, (now) => Deferred.succeed(interruptedAt, now)))
          )
      }
      yield* withAgents({ script }, (harness) =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(Agents.create({ name: "slow", type: "claude_code" }))
          yield* Deferred.await(started)
          yield* TestClock.adjust("59999 millis")
          yield* settle
          assert.isTrue(Option.isNone(yield* Fiber.poll(fiber)), "create ended before 60 s")
          assert.isFalse(yield* Deferred.isDone(interruptedAt))
          yield* TestClock.adjust("1 millis")
          const exit = yield* Fiber.await(fiber)
          assert.isTrue(Exit.isFailure(exit))
          const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
          assert.strictEqual(error?._tag, "OperationTimeout")
          if (error?._tag === "OperationTimeout") {
            assert.strictEqual(error.operation, "agent_creation")
            assert.strictEqual(error.message, "agent_creation timed out after 60s")
          }
          assert.strictEqual(yield* Deferred.await(interruptedAt), 60_000)
          assert.deepStrictEqual(yield* Agents.list, [])
          assert.isFalse(fs.existsSync(nodePath.join(agentsDir(harness), "slow")))
          const rows = yield* (yield* SqlClient.SqlClient)`SELECT name FROM agents`
          assert.deepStrictEqual(rows, [])
          assert.deepStrictEqual(harness.eventTypes(), ["AgentCreateFailed"])
        }))
    })))

  it.effect("a rate-limited greeting is retried with policy anthropic and succeeds", () =>
    Effect.scoped(Effect.gen(function*() {
      const attempts: Array<number> = []
      const script: Agents.Script = {
        startSession: (input) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => {
            attempts.push(now)
            return attempts.length === 1
              ? Effect.fail(new RateLimited({ service: "anthropic", status: 429, message: "slow down" }))
              : Effect.succeed({ sessionId: `s-${input.name}`, greeting: "hi" })
          })
      }
      yield* withAgents({ script }, () =>
        Effect.gen(function*() {
          const fiber = yield* Effect.fork(Agents.create({ name: "patient", type: "claude_code" }))
          // Wait until the retry is asleep, then let its wait (2 s ± 20 %) pass.
          // (The create's own 60 s deadline is asleep too; the retry wait is the one before it.)
          yield* waitUntil(
            Effect.map(TestClock.sleeps(), (sleeps) => attempts.length === 1 && Array.from(sleeps).some((at) => at < 60_000)),
            "the retry wait"
          )
          yield* TestClock.adjust("3 seconds")
          const created = yield* Fiber.join(fiber)
          assert.strictEqual(created.sessionId, "s-patient")
          assert.strictEqual(attempts.length, 2)
          assert.strictEqual(attempts[0], 0)
          assert.isAtLeast(attempts[1]!, 1600)
          assert.isAtMost(attempts[1]!, 3000)
        }))
    })))

  it.scoped("a greeting refused as Unauthorized is not retried and leaves nothing", () => {
    let attempts = 0
    const script: Agents.Script = {
      startSession: () =>
        Effect.suspend(() => {
          attempts++
          return Effect.fail(new Unauthorized({ service: "anthropic", status: 401, message: "bad key" }))
        })
    }
    return withAgents({ script }, (harness) =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Agents.create({ name: "nokey", type: "claude_code" }))
        assert.strictEqual(error._tag, "Unauthorized")
        assert.strictEqual(attempts, 1)
        assert.deepStrictEqual(yield* Agents.list, [])
        assert.isFalse(fs.existsSync(nodePath.join(agentsDir(harness), "nokey")))
      }))
  })

  it.effect("two concurrent creates of one name give one agent and one AgentExists", () =>
    Effect.scoped(Effect.gen(function*() {
      let sessions = 0
      const script: Agents.Script = {
        startSession: (input) =>
          Effect.sleep("1 second").pipe(
            Effect.zipRight(Effect.sync(() => ++sessions)),
            Effect.as({ sessionId: `s-${input.name}-${sessions}`, greeting: "hi" })
          )
      }
      yield* withAgents({ script }, () =>
        Effect.gen(function*() {
          const both = yield* Effect.fork(
            Effect.all([
              Effect.either(Agents.create({ name: "twin", type: "claude_code" })),
              Effect.either(Agents.create({ name: "twin", type: "claude_code" }))
            ], { concurrency: "unbounded" })
          )
          yield* waitUntil(Effect.map(TestClock.sleeps(), (sleeps) => Array.from(sleeps).includes(1_000)), "the first greeting")
          yield* TestClock.adjust("2 seconds")
          const results = yield* Fiber.join(both)
          const successes = results.filter((result) => result._tag === "Right")
          const failures = results.flatMap((result) => result._tag === "Left" ? [result.left] : [])
          assert.strictEqual(successes.length, 1)
          assert.strictEqual(failures.length, 1)
          assert.strictEqual(failures[0]!._tag, "AgentExists")
          assert.match(failures[0]!.message, /twin/)
          assert.strictEqual(sessions, 1)
          assert.deepStrictEqual((yield* Agents.list).map((agent) => agent.name), ["twin"])
        }))
    })))

  it.scoped("creating an existing name fails with AgentExists and changes nothing", () =>
    withAgents({}, () =>
      Effect.gen(function*() {
        const first = yield* Agents.create({ name: "dup", type: "claude_code" })
        const error = yield* Effect.flip(Agents.create({ name: "dup", type: "other" }))
        assert.strictEqual(error._tag, "AgentExists")
        const agents = yield* Agents.list
        assert.deepStrictEqual(agents.map((agent) => [agent.name, agent.type, agent.sessionId]), [["dup", "claude_code", first.sessionId]])
        assert.isTrue(fs.existsSync(first.directory))
      })))
})

// ---------------------------------------------------------------------------------------------

describe("Agents.command", () => {
  it.scoped("returns at once and the operator file ends with the result", () =>
    withAgents({}, (harness) =>
      Effect.gen(function*() {
        yield* Agents.create({ name: "worker", type: "claude_code" })
        const { operatorFile } = yield* Agents.command("worker", "write the report")
        assert.strictEqual(nodePath.dirname(operatorFile), nodePath.join(agentsDir(harness), "worker"))
        assert.match(nodePath.basename(operatorFile), /^operator-\d{8}T\d{9}Z-\d{6}\.md$/)
        yield* waitForEvent(harness, "AgentCommandFinished")
        const content = fs.readFileSync(operatorFile, "utf8")
        assert.include(content, "- Status: completed")
        assert.include(content, "## Task\n\nwrite the report\n")
        assert.include(content, "Text: Working on: write the report")
        assert.include(content, "## Result\n\nDone: write the report")
        // No temp files are left behind.
        assert.deepStrictEqual(fs.readdirSync(nodePath.dirname(operatorFile)), [nodePath.basename(operatorFile)])
      })))

  it.effect("a command running past 300 s is interrupted and its operator file says so", () =>
    Effect.scoped(Effect.gen(function*() {
      const interruptedAt = yield* Deferred.make<number>()
      const script: Agents.Script = {
        run: () =>
          Stream.concat(
            Stream.make(Agents.TextMessage.make({ text: "thinking hard" })),
            Stream.fromEffect(
              Effect.never.pipe(
                Effect.onInterrupt(() => Effect.flatMap(Clock.currentTimeMillis, (now) => Deferred.succeed(interruptedAt, now)))
              )
            )
          )
      }
      yield* withAgents({ script }, (harness) =>
        Effect.gen(function*() {
          yield* Agents.create({ name: "stuck", type: "claude_code" })
          const { operatorFile } = yield* Agents.command("stuck", "never finish")
          yield* waitUntil(fileContains(operatorFile, "Text: thinking hard"), "progress in the operator file")
          yield* TestClock.adjust("299 seconds")
          yield* settle
          assert.isFalse(yield* Deferred.isDone(interruptedAt))
          yield* TestClock.adjust("1 seconds")
          yield* waitForEvent(harness, "AgentCommandTimedOut")
          assert.strictEqual(yield* Deferred.await(interruptedAt), 300_000)
          const content = fs.readFileSync(operatorFile, "utf8")
          assert.include(content, "- Status: timed out")
          assert.include(content, "timed out after 300s")
          const event = harness.events.find((event) => event.hook_event_type === "AgentCommandTimedOut")!
          assert.strictEqual(event.session_id, "session-stuck")
          assert.strictEqual(event.payload["operator_file"], operatorFile)
        }))
    })))

  it.scoped("a failing run is written into the operator file and emitted", () =>
    withAgents({
      script: { run: () => Stream.fail(new Unauthorized({ service: "anthropic", status: 401, message: "anthropic answered HTTP 401" })) }
    }, (harness) =>
      Effect.gen(function*() {
        yield* Agents.create({ name: "denied", type: "claude_code" })
        const { operatorFile } = yield* Agents.command("denied", "try")
        yield* waitForEvent(harness, "AgentCommandFailed")
        const content = fs.readFileSync(operatorFile, "utf8")
        assert.include(content, "- Status: failed")
        assert.include(content, "Failed: Unauthorized: anthropic answered HTTP 401")
        const event = harness.events.find((event) => event.hook_event_type === "AgentCommandFailed")!
        assert.strictEqual(event.payload["error_tag"], "Unauthorized")
      })))

  it.scoped("a run refused with a hint of when to come back emits AgentCommandFailed with retry_after_ms", () =>
    withAgents({
      script: {
        run: () =>
          Stream.fail(new RateLimited({ service: "anthropic", status: 429, message: "slow down", retryAfter: Duration.hours(1) }))
      }
    }, (harness) =>
      Effect.gen(function*() {
        yield* Agents.create({ name: "throttled", type: "claude_code" })
        yield* Agents.command("throttled", "go")
        yield* waitForEvent(harness, "AgentCommandFailed")
        const event = harness.events.find((event) => event.hook_event_type === "AgentCommandFailed")!
        assert.deepStrictEqual(
          [event.payload["error_tag"], event.payload["retryable"], event.payload["retry_after_ms"]],
          ["RateLimited", true, 3_600_000]
        )
      })))

  it.scoped("an agent-level error result marks the file failed", () =>
    withAgents({
      script: {
        run: () => Stream.make(Agents.ResultMessage.make({ text: "hit the turn limit", isError: true, subtype: "error_max_turns" }))
      }
    }, (harness) =>
      Effect.gen(function*() {
        yield* Agents.create({ name: "limited", type: "claude_code" })
        const { operatorFile } = yield* Agents.command("limited", "go")
        yield* waitForEvent(harness, "AgentCommandFailed")
        const content = fs.readFileSync(operatorFile, "utf8")
        assert.include(content, "- Status: failed")
        assert.include(content, "(error_max_turns)")
        assert.include(content, "hit the turn limit")
      })))

  it.scoped("command on an unknown agent is NotFound and an empty prompt is refused", () =>
    withAgents({}, () =>
      Effect.gen(function*() {
        assert.strictEqual((yield* Effect.flip(Agents.command("ghost", "hi")))._tag, "NotFound")
        assert.strictEqual((yield* Effect.flip(Agents.command("../etc", "hi")))._tag, "NotFound")
        yield* Agents.create({ name: "quiet", type: "claude_code" })
        assert.strictEqual((yield* Effect.flip(Agents.command("quiet", "  ")))._tag, "InvalidRequest")
      })))
})

describe("Agents.result", () => {
  it.scoped("reads the latest operator file, or a named one, and refuses paths outside", () =>
    withAgents({}, (harness) =>
      Effect.gen(function*() {
        yield* Agents.create({ name: "reader", type: "claude_code" })
        assert.strictEqual((yield* Effect.flip(Agents.result("reader")))._tag, "NotFound")
        const first = yield* Agents.command("reader", "first task")
        yield* waitForEvent(harness, "AgentCommandFinished")
        const second = yield* Agents.command("reader", "second task")
        yield* waitUntil(Effect.sync(() => harness.eventTypes().filter((type) => type === "AgentCommandFinished").length === 2), "two finished commands")

        const latest = yield* Agents.result("reader")
        assert.strictEqual(latest.file, second.operatorFile)
        assert.include(latest.content, "second task")

        const byPath = yield* Agents.result("reader", first.operatorFile)
        assert.strictEqual(byPath.file, first.operatorFile)
        assert.include(byPath.content, "first task")
        const byName = yield* Agents.result("reader", nodePath.basename(first.operatorFile))
        assert.strictEqual(byName.file, first.operatorFile)

        fs.writeFileSync(nodePath.join(harness.dir, "secret.md"), "secret")
        for (const escape of ["../secret.md", "../../secret.md", nodePath.join(harness.dir, "secret.md"), "sub/operator-x.md", "notes.txt"]) {
          assert.strictEqual((yield* Effect.flip(Agents.result("reader", escape)))._tag, "InvalidRequest", escape)
        }
        assert.strictEqual((yield* Effect.flip(Agents.result("reader", "operator-missing.md")))._tag, "NotFound")
        assert.strictEqual((yield* Effect.flip(Agents.result("nobody")))._tag, "NotFound")
      })))
})

describe("Agents.delete", () => {
  it.scoped("interrupts a running command, removes the directory and the entry", () => {
    let waiting = false
    let interrupted = false
    const script: Agents.Script = {
      run: () =>
        Stream.concat(
          Stream.make(Agents.ProgressMessage.make({ message: "started" })),
          Stream.fromEffect(
            Effect.sync(() => void (waiting = true)).pipe(
              Effect.zipRight(Effect.never),
              Effect.onInterrupt(() => Effect.sync(() => void (interrupted = true)))
            )
          )
        )
    }
    return withAgents({ script }, (harness) =>
      Effect.gen(function*() {
        const created = yield* Agents.create({ name: "doomed", type: "claude_code" })
        const { operatorFile } = yield* Agents.command("doomed", "run forever")
        yield* waitUntil(Effect.zipWith(fileContains(operatorFile, "Progress: started"), Effect.sync(() => waiting), (a, b) => a && b), "the command to start")
        assert.strictEqual((yield* Agents.list)[0]!.runningCommands, 1)
        yield* Agents.delete("doomed")
        assert.isTrue(interrupted)
        assert.isFalse(fs.existsSync(created.directory))
        assert.deepStrictEqual(yield* Agents.list, [])
        assert.deepStrictEqual(harness.eventTypes(), ["AgentCreated", "AgentCommandStarted", "AgentCommandInterrupted", "AgentDeleted"])
        const deleted = harness.events.at(-1)!
        assert.strictEqual(deleted.payload["interrupted_commands"], 1)
        // The name can be used again.
        yield* Agents.create({ name: "doomed", type: "claude_code" })
      }))
  })

  it.scoped("gives NotFound for unknown names", () =>
    withAgents({}, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Agents.delete("nobody"))
        assert.strictEqual(error._tag, "NotFound")
        assert.strictEqual(error.service, "agents")
        assert.strictEqual((yield* Effect.flip(Agents.remove("../x")))._tag, "NotFound")
      })))
})

describe("Agents scope", () => {
  it.scoped("closing the layer interrupts running commands and records it in their files", () =>
    Effect.gen(function*() {
      let waiting = false
      const script: Agents.Script = {
        run: () => Stream.fromEffect(Effect.sync(() => void (waiting = true)).pipe(Effect.zipRight(Effect.never)))
      }
      const dir = yield* tempDir
      const { operatorFile } = yield* withAgents({ script, dir }, () =>
        Effect.gen(function*() {
          yield* Agents.create({ name: "longrun", type: "claude_code" })
          const started = yield* Agents.command("longrun", "forever")
          yield* waitUntil(Effect.sync(() => waiting), "the command to start")
          return started
        }))
      const content = fs.readFileSync(operatorFile, "utf8")
      assert.include(content, "- Status: interrupted")
      assert.include(content, "Interrupted: the command was stopped before it finished")
    }))
})

describe("Agents lifecycle events", () => {
  it.scoped("create, command and delete emit big3 events for the agent's session", () =>
    withAgents({}, (harness) =>
      Effect.gen(function*() {
        const created = yield* Agents.create({ name: "observed", type: "claude_code" })
        const { operatorFile } = yield* Agents.command("observed", "do it")
        yield* waitForEvent(harness, "AgentCommandFinished")
        yield* Agents.delete("observed")
        assert.deepStrictEqual(harness.eventTypes(), ["AgentCreated", "AgentCommandStarted", "AgentCommandFinished", "AgentDeleted"])
        for (const event of harness.events) {
          assert.strictEqual(event.source_app, "big3")
          assert.strictEqual(event.session_id, created.sessionId)
          assert.strictEqual(event.payload["agent"], "observed")
        }
        assert.strictEqual(harness.events[1]!.payload["operator_file"], operatorFile)
        assert.strictEqual(harness.events[1]!.payload["prompt"], "do it")
        assert.strictEqual(harness.events[2]!.payload["cost_usd"], 0)
      })))
})

describe("Agents registry", () => {
  it.scoped("a corrupt row gives a clear error naming the agent and is never rewritten", () =>
    withAgents({}, () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* Agents.create({ name: "healthy", type: "claude_code" })
        yield* sql`INSERT INTO agents (name, type, status, session_id, greeting, reservation, created_at)
          VALUES ('broken', 'claude_code', 'ready', NULL, NULL, NULL, 'yesterday')`
        const before = yield* sql`SELECT * FROM agents WHERE name = 'broken'`

        const listed = yield* Effect.flip(Agents.list)
        assert.strictEqual(listed._tag, "RegistryCorrupt")
        if (listed._tag === "RegistryCorrupt") assert.strictEqual(listed.agent, "broken")
        assert.match(listed.message, /"broken" is unreadable/)
        assert.match(listed.message, /left it untouched/)

        const created = yield* Effect.flip(Agents.create({ name: "broken", type: "claude_code" }))
        assert.strictEqual(created._tag, "RegistryCorrupt")
        const deleted = yield* Effect.flip(Agents.delete("broken"))
        assert.strictEqual(deleted._tag, "RegistryCorrupt")
        const commanded = yield* Effect.flip(Agents.command("broken", "hi"))
        assert.strictEqual(commanded._tag, "RegistryCorrupt")

        assert.deepStrictEqual(yield* sql`SELECT * FROM agents WHERE name = 'broken'`, before)
        assert.strictEqual((yield* sql`SELECT count(*) AS n FROM agents`)[0]!["n"], 2)
        // The healthy agent is still usable by name.
        yield* Agents.command("healthy", "still fine")
      })))

  it.scoped("a row whose name could leave the agents directory is corrupt, not a path", () =>
    withAgents({}, () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO agents (name, type, status, session_id, greeting, reservation, created_at)
          VALUES ('../evil', 'claude_code', 'ready', 's', 'g', NULL, 0)`
        const error = yield* Effect.flip(Agents.list)
        assert.strictEqual(error._tag, "RegistryCorrupt")
      })))

  it.scoped("two services sharing one database file (two big3 processes) cannot both create a name", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const database = nodePath.join(dir, "big3.db")
      const attempt = withAgents({ database, dir }, () => Effect.either(Agents.create({ name: "shared", type: "claude_code" })))
      const results = yield* Effect.all([attempt, attempt], { concurrency: "unbounded" })
      assert.deepStrictEqual(results.map((result) => result._tag).sort(), ["Left", "Right"])
      const failure = results.flatMap((result) => result._tag === "Left" ? [result.left] : [])[0]
      assert.strictEqual(failure?._tag, "AgentExists")
      const agents = yield* withAgents({ database, dir }, () => Agents.list)
      assert.deepStrictEqual(agents.map((agent) => agent.name), ["shared"])
      assert.isTrue(fs.existsSync(nodePath.join(dir, "agents", "shared")))
    }))

  it.scoped("the registry survives a restart in a database file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const database = nodePath.join(dir, "big3.db")
      yield* withAgents({ database }, () => Agents.create({ name: "durable", type: "claude_code" }))
      const agents = yield* withAgents({ database }, () => Agents.list)
      assert.deepStrictEqual(agents.map((agent) => agent.name), ["durable"])
    }))
})

describe("Agents.fromSdkError", () => {
  it("maps Claude Code process failures into the taxonomy without the key", () => {
    const secret = "fake-anthropic-key-for-tests"
    const cases: ReadonlyArray<readonly [string, string, boolean]> = [
      ["Claude Code process exited with code 1. stderr: 429 rate limit exceeded", "RateLimited", true],
      ["Claude Code process exited with code 1. stderr: overloaded_error", "ServiceUnavailable", true],
      ["fetch failed: connect ECONNREFUSED 127.0.0.1:9", "NetworkError", true],
      [`Invalid API key ${secret}`, "Unauthorized", false],
      ["Claude Code process exited with code 1. stderr: --dangerously-skip-permissions cannot be used with root/sudo privileges", "InvalidRequest", false],
      ["spawn /nope/claude ENOENT", "InvalidRequest", false]
    ]
    for (const [message, tag, retryable] of cases) {
      const error = Agents.fromSdkError(new Error(message), secret)
      assert.strictEqual(error._tag, tag, message)
      assert.strictEqual(error.retryable, retryable, message)
      assert.strictEqual(error.service, "anthropic")
      assert.notInclude(error.message, secret)
    }
  })
})

describe("hookPayload", () => {
  it("a tool output holding the key reaches the event payload as <redacted>, also in a string long enough to be cut", () => {
    const secret = "fake-anthropic-key-for-tests-0123"
    const payload = hookPayload({
      hook_event_name: "PostToolUse",
      session_id: "s-1",
      transcript_path: "/tmp/t.jsonl",
      cwd: "/tmp",
      tool_name: "Bash",
      tool_input: { command: "env" },
      tool_response: { stdout: `PATH=/usr/bin\nANTHROPIC_API_KEY=${secret}\n`, stderr: `${"x".repeat(1990)}${secret}` },
      tool_use_id: "toolu_1"
    }, secret)
    assert.deepStrictEqual(payload["tool_response"], {
      stdout: "PATH=/usr/bin\nANTHROPIC_API_KEY=<redacted>\n",
      stderr: `${"x".repeat(1990)}<redacted>`
    })
    assert.notInclude(JSON.stringify(payload), secret.slice(0, 8))
  })
})

describe("toAgentMessages", () => {
  const secret = "fake-anthropic-key-for-tests-0123"
  const assistant = sdkAssistant([
    { type: "text", text: `The key is ${secret}.`, citations: null },
    { type: "tool_use", id: "toolu_1", name: "Bash", input: { command: `curl -H 'x-api-key: ${secret}' …`, timeout: 5 } }
  ], { session_id: "s-1" })
  const toolResult: Sdk.SDKUserMessage = {
    type: "user",
    parent_tool_use_id: null,
    session_id: "s-1",
    message: {
      role: "user",
      content: [{ type: "tool_result", tool_use_id: "toolu_1", content: `PATH=/usr/bin\nANTHROPIC_API_KEY=${secret}\n` }]
    }
  }

  it("the key in the agent's text, a tool's input or a tool's output reaches operator files and events as <redacted>", () => {
    const messages = [...toAgentMessages(assistant, secret), ...toAgentMessages(toolResult, secret)]
    assert.deepStrictEqual(messages, [
      { _tag: "Text", text: "The key is <redacted>." },
      { _tag: "ToolUse", id: "toolu_1", name: "Bash", input: { command: "curl -H 'x-api-key: <redacted>' …", timeout: 5 } },
      { _tag: "ToolResult", id: "toolu_1", isError: false, content: "PATH=/usr/bin\nANTHROPIC_API_KEY=<redacted>\n" }
    ])
  })

  it("without a key, messages are passed on as they are", () => {
    assert.deepStrictEqual(toAgentMessages(assistant, undefined)[1], {
      _tag: "ToolUse",
      id: "toolu_1",
      name: "Bash",
      input: { command: `curl -H 'x-api-key: ${secret}' …`, timeout: 5 }
    })
  })
})
