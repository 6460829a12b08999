/**
 * A runner's Agents service (`Agents.layerDurable`) without the cluster: commands are recorded
 * and handed to a dispatch that keeps them, and the tests deliver them to `CommandHost.execute`
 * the way the `Agent` entity does, including twice (a runner died), concurrently (a runner that
 * lost the agent still runs), and after a delete. SQLite in memory; time is the TestClock.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigError from "effect/ConfigError"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as Agents from "../src/Agents.js"
import { scriptedDelayConfig } from "../src/cli/agents-run.js"
import { fileContains, settle, waitUntil, withDurableAgents } from "./support/agents.js"

const count = (content: string, pattern: RegExp) => content.match(pattern)?.length ?? 0

const recorded = Effect.flatMap(SqlClient.SqlClient, (sql) =>
  sql<{ file: string; status: string; attempts: number }>`SELECT file, status, attempts FROM agent_commands`)

/** A run that says it started, then waits for `gate` before answering (each call counted in `runs`). */
const gated = (gate: Deferred.Deferred<void>, runs: { count: number }): Agents.Script => ({
  run: (input) =>
    Stream.concat(
      Stream.make(Agents.ProgressMessage.make({ message: `run ${++runs.count} started` })),
      Stream.fromEffect(Deferred.await(gate)).pipe(
        Stream.drain,
        Stream.concat(Stream.make(
          Agents.TextMessage.make({ text: `Working on: ${input.prompt}` }),
          Agents.ResultMessage.make({ text: `Done: ${input.prompt}`, isError: false, costUsd: 0 })
        ))
      )
    )
})

describe("Agents on a runner", () => {
  it.scoped("command writes the operator file, records the command and dispatches it; nothing runs until it is delivered", () =>
    withDurableAgents({}, (harness) =>
      Effect.gen(function*() {
        yield* Agents.create({ name: "queued", type: "coder" })
        const { operatorFile } = yield* Agents.command("queued", "wait for a runner")
        const file = nodePath.basename(operatorFile)
        assert.deepStrictEqual(harness.dispatched.map(({ agent, file, prompt }) => ({ agent, file, prompt })), [
          { agent: "queued", file, prompt: "wait for a runner" }
        ])
        const content = fs.readFileSync(operatorFile, "utf8")
        assert.match(content, /^- Status: running$/m)
        assert.include(content, "## Progress\n\n_none yet_\n")
        assert.deepStrictEqual((yield* recorded).map((row) => [row.file, row.status, Number(row.attempts)]), [[file, "running", 0]])
        assert.deepStrictEqual([...harness.eventTypes()], ["AgentCreated", "AgentCommandStarted"])
        assert.strictEqual((yield* Agents.list)[0]!.runningCommands, 1)
      })))

  it.scoped("the first delivery runs the command to completion and returns the recorded outcome", () =>
    withDurableAgents({}, (harness) =>
      Effect.gen(function*() {
        const host = yield* Agents.CommandHost
        yield* Agents.create({ name: "first", type: "coder" })
        const { operatorFile } = yield* Agents.command("first", "do it once")
        const outcome = yield* host.execute(harness.dispatched[0]!)
        assert.deepStrictEqual(outcome, { status: "completed", attempt: 1 })
        const content = fs.readFileSync(operatorFile, "utf8")
        assert.match(content, /^- Status: completed$/m)
        assert.strictEqual(count(content, /Resumed after a restart/g), 0)
        assert.include(content, "## Result\n\nDone: do it once")
        assert.strictEqual((yield* Agents.list)[0]!.runningCommands, 0)
        assert.includeMembers([...harness.eventTypes()], ["AgentCommandFinished"])
      })))

  it.scoped("a delivery cut by its runner hands the command over; the next resumes it as attempt 2 and completes it once", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const runs = { count: 0 }
      yield* withDurableAgents({ script: gated(gate, runs) }, (harness) =>
        Effect.gen(function*() {
          const host = yield* Agents.CommandHost
          yield* Agents.create({ name: "resumer", type: "coder" })
          const { operatorFile } = yield* Agents.command("resumer", "survive a restart")
          const command = harness.dispatched[0]!
          // The runner stops under the first delivery (its entity's handler is interrupted).
          const first = yield* Effect.fork(host.execute(command))
          yield* waitUntil(fileContains(operatorFile, "Progress: run 1 started"), "the first run to start")
          yield* Fiber.interrupt(first)
          const handedOver = fs.readFileSync(operatorFile, "utf8")
          assert.match(handedOver, /^- Status: running$/m)
          assert.include(handedOver, "Handed over: this runner stopped or gave the agent up")

          yield* Deferred.succeed(gate, undefined)
          const outcome = yield* host.execute(command)
          assert.deepStrictEqual(outcome, { status: "completed", attempt: 2 })
          const content = fs.readFileSync(operatorFile, "utf8")
          assert.match(content, /^- Status: completed$/m)
          // The earlier progress is kept, then the resumption, then the second run to its end.
          const progress = content.slice(content.indexOf("## Progress"), content.indexOf("## Result"))
            .split("\n").filter((line) => line.startsWith("- ")).map((line) => line.replace(/^- \S+ /, ""))
          assert.deepStrictEqual(progress, [
            "Progress: run 1 started",
            "Handed over: this runner stopped or gave the agent up; the command resumes on the runner that takes the agent",
            "Resumed after a restart: attempt 2",
            "Progress: run 2 started",
            "Text: Working on: survive a restart",
            "Result"
          ])
          assert.strictEqual(count(content, /^Done: survive a restart$/gm), 1)
          assert.deepStrictEqual((yield* recorded).map((row) => [row.status, Number(row.attempts)]), [["completed", 2]])
          const types = harness.eventTypes()
          assert.deepStrictEqual(types.filter((type) => type.startsWith("AgentCommand")), [
            "AgentCommandStarted",
            "AgentCommandHandedOver",
            "AgentCommandResumed",
            "AgentCommandFinished"
          ])
        }))
    }))

  it.scoped("an attempt that a later one superseded neither writes nor records, and reports the later one's outcome", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      let calls = 0
      // The first run waits at the gate; the second answers at once.
      const script: Agents.Script = {
        run: (input) => {
          calls++
          const answer = Stream.make(
            Agents.TextMessage.make({ text: `run ${calls} worked on: ${input.prompt}` }),
            Agents.ResultMessage.make({ text: `run ${calls} done`, isError: false })
          )
          return calls === 1
            ? Stream.concat(Stream.fromEffect(Deferred.await(gate)).pipe(Stream.drain), answer)
            : answer
        }
      }
      yield* withDurableAgents({ script }, (harness) =>
        Effect.gen(function*() {
          const host = yield* Agents.CommandHost
          yield* Agents.create({ name: "twice", type: "coder" })
          const { operatorFile } = yield* Agents.command("twice", "only once")
          const command = harness.dispatched[0]!
          const stale = yield* Effect.fork(host.execute(command))
          yield* waitUntil(Effect.sync(() => calls === 1), "the first run to start")
          const current = yield* host.execute(command)
          assert.deepStrictEqual(current, { status: "completed", attempt: 2 })
          const written = fs.readFileSync(operatorFile, "utf8")
          yield* Deferred.succeed(gate, undefined)
          assert.deepStrictEqual(yield* Fiber.join(stale), { status: "completed", attempt: 2 })
          yield* settle
          assert.strictEqual(fs.readFileSync(operatorFile, "utf8"), written)
          assert.include(written, "## Result\n\nrun 2 done")
          assert.strictEqual(count(written, /run 1 worked on/g), 0)
          assert.strictEqual(harness.eventTypes().filter((type) => type === "AgentCommandFinished").length, 1)
        }))
    }))

  it.scoped("a delivery of a command already finished re-writes its outcome and runs nothing", () =>
    Effect.gen(function*() {
      let runs = 0
      const script: Agents.Script = {
        run: (input) => {
          runs++
          return Stream.make(Agents.ResultMessage.make({ text: `Done: ${input.prompt}`, isError: false }))
        }
      }
      yield* withDurableAgents({ script }, (harness) =>
        Effect.gen(function*() {
          const host = yield* Agents.CommandHost
          yield* Agents.create({ name: "done", type: "coder" })
          const { operatorFile } = yield* Agents.command("done", "finish")
          yield* host.execute(harness.dispatched[0]!)
          const finished = fs.readFileSync(operatorFile, "utf8")
          // The runner died after recording the outcome, before writing it.
          fs.writeFileSync(operatorFile, finished.replace("- Status: completed", "- Status: running"))
          const outcome = yield* host.execute(harness.dispatched[0]!)
          assert.deepStrictEqual(outcome, { status: "completed", attempt: 1 })
          assert.strictEqual(runs, 1)
          const content = fs.readFileSync(operatorFile, "utf8")
          assert.match(content, /^- Status: completed$/m)
          assert.include(content, "## Result\n\nDone: finish")
        }))
    }))

  it.scoped("deleting the agent stops its durable command as interrupted; a later delivery finds nothing to run", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const runs = { count: 0 }
      yield* withDurableAgents({ script: gated(gate, runs) }, (harness) =>
        Effect.gen(function*() {
          const host = yield* Agents.CommandHost
          yield* Agents.create({ name: "doomed", type: "coder" })
          const { operatorFile } = yield* Agents.command("doomed", "forever")
          const running = yield* Effect.fork(host.execute(harness.dispatched[0]!))
          yield* waitUntil(fileContains(operatorFile, "Progress: run 1 started"), "the run to start")
          yield* Agents.delete("doomed")
          const outcome = yield* Fiber.join(running)
          assert.strictEqual(outcome.status, "interrupted")
          assert.deepStrictEqual(yield* recorded, [])
          assert.includeMembers([...harness.eventTypes()], ["AgentCommandInterrupted", "AgentDeleted"])
          assert.deepStrictEqual(yield* host.execute(harness.dispatched[0]!), { status: "interrupted", attempt: 0 })
          assert.strictEqual(runs.count, 1)
        }))
    }))

  it.scoped("a command whose agent directory became a symbolic link ends failed, recorded, without running", () =>
    Effect.gen(function*() {
      let runs = 0
      const script: Agents.Script = { run: () => Stream.fromEffect(Effect.sync(() => runs++)).pipe(Stream.drain) }
      yield* withDurableAgents({ script }, (harness) =>
        Effect.gen(function*() {
          const host = yield* Agents.CommandHost
          const created = yield* Agents.create({ name: "linked", type: "coder" })
          yield* Agents.command("linked", "follow no links")
          const elsewhere = nodePath.join(harness.dir, "elsewhere")
          fs.renameSync(created.directory, elsewhere)
          fs.symlinkSync(elsewhere, created.directory)
          const outcome = yield* host.execute(harness.dispatched[0]!)
          assert.deepStrictEqual(outcome, { status: "failed", attempt: 0 })
          assert.strictEqual(runs, 0)
          const rows = yield* recorded
          assert.deepStrictEqual(rows.map((row) => row.status), ["failed"])
        }))
    }))
})

describe("BIG3_SCRIPTED_DELAY", () => {
  it.effect("a delayed scripted run answers after the delay, its first progress at once", () =>
    Effect.gen(function*() {
      const run = Agents.delayedRun(Agents.scriptedRun, "3 seconds")
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(
        Stream.runForEach(run({ sessionId: "s", prompt: "wait", cwd: "/w" }), (message) => Effect.sync(() => void seen.push(message._tag)))
      )
      yield* TestClock.adjust("2999 millis")
      assert.deepStrictEqual(seen, ["Progress"])
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      assert.deepStrictEqual(seen, ["Progress", "Text", "Result"])
    }))

  it.effect("is seconds or a duration, 0 when unset, and a configuration error naming the key otherwise", () =>
    Effect.gen(function*() {
      const read = (value: string | undefined) =>
        scriptedDelayConfig.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(value === undefined ? [] : [["BIG3_SCRIPTED_DELAY", value]]))))
      assert.deepStrictEqual(
        (yield* Effect.all([read(undefined), read("2.5"), read("1500 millis"), read("0")])).map(Duration.toMillis),
        [0, 2500, 1500, 0]
      )
      const error = yield* Effect.flip(read("soon"))
      assert.isTrue(ConfigError.isConfigError(error))
      assert.include(String(error), "BIG3_SCRIPTED_DELAY")
    }))
})
