/**
 * Agents on disk: the registry records each agent's directory and deletes only that; path
 * settings are read one way; no symbolic link is followed out of an agent's directory; progress
 * does not rewrite the operator file per message.
 */
import * as FileSystem from "@effect/platform/FileSystem"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as SqlClient from "@effect/sql/SqlClient"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as TestClock from "effect/TestClock"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as nodePath from "node:path"
import * as Agents from "../src/Agents.js"
import * as Store from "../src/Store.js"
import { fileContains, settle, tempDir, waitForEvent, waitUntil, withAgents } from "./support/agents.js"
import { captureLogs } from "./support/capture.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))

/** The `agents` table as the first big3 release made it: no directory columns. */
const legacyTable = `CREATE TABLE agents (
  name TEXT PRIMARY KEY NOT NULL, type TEXT NOT NULL, status TEXT NOT NULL, session_id TEXT,
  greeting TEXT, reservation TEXT, created_at INTEGER NOT NULL)`

/** A database file holding one ready agent registered by an older big3. */
const legacyDatabase = (database: string, name: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe(legacyTable).raw
    yield* sql`INSERT INTO agents (name, type, status, session_id, greeting, reservation, created_at)
      VALUES (${name}, 'claude_code', 'ready', ${`session-${name}`}, 'hello', NULL, 0)`
  }).pipe(Effect.provide(SqliteClient.layer({ filename: database })))

const tagOf = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(self), (error) =>
    typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : String(error))

const errorOf = <A, E, R>(self: Effect.Effect<A, E, R>) => Effect.flip(self)

// ---------------------------------------------------------------------------------------------

/** A script that says "first", then "second" 10 seconds (of the test clock) later, then ends. */
const firstThenSecondAfter10s: Agents.Script = {
  run: () =>
    Stream.concat(
      Stream.make(Agents.TextMessage.make({ text: "first" })),
      Stream.fromEffect(Effect.as(Effect.sleep("10 seconds"), Agents.TextMessage.make({ text: "second" })))
    ).pipe(Stream.concat(Stream.make(Agents.ResultMessage.make({ text: "done", isError: false }))))
}

describe("Agents paths: one reading of every path setting", () => {
  it.effect("blank BIG3_STATE_DIR / BIG3_AGENTS_DIR mean unset: agents under .big3/agents, not /agents", () =>
    Effect.gen(function*() {
      const read = (env: Record<string, string>) => Effect.all([Agents.agentsDirConfig, Store.stateDir]).pipe(withEnv(env))
      const defaults = [nodePath.join(".big3", "agents"), ".big3"]
      assert.deepStrictEqual(yield* read({}), defaults)
      assert.deepStrictEqual(yield* read({ BIG3_STATE_DIR: "" }), defaults)
      assert.deepStrictEqual(yield* read({ BIG3_STATE_DIR: "   " }), defaults)
      assert.deepStrictEqual(yield* read({ BIG3_STATE_DIR: "", BIG3_AGENTS_DIR: "" }), defaults)
      assert.deepStrictEqual(yield* read({ BIG3_STATE_DIR: " /srv/big3 ", BIG3_AGENTS_DIR: " " }), ["/srv/big3/agents", "/srv/big3"])
      assert.deepStrictEqual(yield* read({ BIG3_STATE_DIR: "/srv/big3/" }), ["/srv/big3/agents", "/srv/big3/"])
      assert.deepStrictEqual(yield* read({ BIG3_AGENTS_DIR: " /a " }), ["/a", ".big3"])
    }))

  it.effect("a path setting with a NUL character is a ConfigError naming the key", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Agents.agentsDirConfig.pipe(withEnv({ BIG3_AGENTS_DIR: "/tmp/a\u0000b" })))
      assert.strictEqual(error._op, "InvalidData")
      assert.strictEqual(error.message, "BIG3_AGENTS_DIR: a path cannot contain a NUL character")
      const state = yield* Effect.flip(Store.stateDir.pipe(withEnv({ BIG3_STATE_DIR: "x\u0000" })))
      assert.strictEqual(state.message, "BIG3_STATE_DIR: a path cannot contain a NUL character")
    }))

  it.effect("a blank CLAUDE_CODE_EXECUTABLE is unset, not the empty path", () =>
    Effect.gen(function*() {
      assert.isUndefined((yield* Agents.claudeAgentSdkConfig.pipe(withEnv({ CLAUDE_CODE_EXECUTABLE: " " }))).executable)
      assert.strictEqual(
        (yield* Agents.claudeAgentSdkConfig.pipe(withEnv({ CLAUDE_CODE_EXECUTABLE: " /opt/claude " }))).executable,
        "/opt/claude"
      )
    }))
})

// ---------------------------------------------------------------------------------------------

describe("Agents on disk: each agent's directory is recorded", () => {
  it.scoped("delete removes the directory recorded at creation, not the one the current settings point at", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const database = nodePath.join(dir, "big3.db")
      const rootA = nodePath.join(dir, "a")
      const rootP = nodePath.join(dir, "p")
      yield* withAgents({ database, dir, agentsDir: rootA }, () => Agents.create({ name: "victim", type: "claude_code" }))
      // An unrelated directory of the same name under the other root.
      fs.mkdirSync(nodePath.join(rootP, "victim"), { recursive: true })
      fs.writeFileSync(nodePath.join(rootP, "victim", "keep.txt"), "unrelated")

      yield* withAgents({ database, dir, agentsDir: rootP }, (harness) =>
        Effect.gen(function*() {
          const [agent] = yield* Agents.list
          assert.strictEqual(agent?.directory, nodePath.join(rootA, "victim"))
          assert.strictEqual(agent?.directoryRecorded, true)
          // Commands work where the agent lives, too.
          const { operatorFile } = yield* Agents.command("victim", "still here?")
          assert.strictEqual(nodePath.dirname(operatorFile), nodePath.join(rootA, "victim"))
          yield* waitForEvent(harness, "AgentCommandFinished")
          yield* Agents.delete("victim")
          assert.deepStrictEqual(yield* Agents.list, [])
        }))
      assert.strictEqual(fs.readFileSync(nodePath.join(rootP, "victim", "keep.txt"), "utf8"), "unrelated")
      assert.isFalse(fs.existsSync(nodePath.join(rootA, "victim")))
    }))

  it.scoped("delete refuses when the agents root it was created under became a symbolic link", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const database = nodePath.join(dir, "big3.db")
      const rootA = nodePath.join(dir, "a")
      const rootP = nodePath.join(dir, "p")
      yield* withAgents({ database, dir, agentsDir: rootA }, () => Agents.create({ name: "victim", type: "claude_code" }))
      fs.mkdirSync(nodePath.join(rootP, "victim"), { recursive: true })
      fs.writeFileSync(nodePath.join(rootP, "victim", "keep.txt"), "unrelated")
      fs.renameSync(rootA, `${rootA}-moved`)
      fs.symlinkSync(rootP, rootA)

      yield* withAgents({ database, dir, agentsDir: rootA }, () =>
        Effect.gen(function*() {
          const error = yield* errorOf(Agents.delete("victim"))
          assert.strictEqual(error._tag, "UnsafeAgentPath")
          assert.strictEqual(
            error.message,
            `the directory of agent victim, ${nodePath.join(rootA, "victim")}, now resolves to ` +
              `${nodePath.join(rootP, "victim")}: it (or a directory above it) was replaced by a symbolic link, and ` +
              `big3 does not follow links out of an agent's directory; nothing was read, written or removed`
          )
          assert.deepStrictEqual((yield* Agents.list).map((agent) => agent.name), ["victim"])
        }))
      assert.strictEqual(fs.readFileSync(nodePath.join(rootP, "victim", "keep.txt"), "utf8"), "unrelated")
    }))

  it.scoped("delete refuses an agent directory replaced by a symbolic link and changes nothing", () =>
    withAgents({}, (harness) =>
      Effect.gen(function*() {
        const created = yield* Agents.create({ name: "linked", type: "claude_code" })
        const outside = nodePath.join(harness.dir, "outside")
        fs.mkdirSync(outside)
        fs.writeFileSync(nodePath.join(outside, "precious.txt"), "keep me")
        fs.rmSync(created.directory, { recursive: true })
        fs.symlinkSync(outside, created.directory)

        assert.strictEqual(yield* tagOf(Agents.delete("linked")), "UnsafeAgentPath")
        assert.deepStrictEqual((yield* Agents.list).map((agent) => agent.name), ["linked"])
        assert.isTrue(fs.lstatSync(created.directory).isSymbolicLink())
        assert.deepStrictEqual(fs.readdirSync(outside), ["precious.txt"])
        assert.notInclude(harness.eventTypes(), "AgentDeleted")
      })))

  it.scoped("an older database keeps working; delete removes no unrecorded directory unless told to keep it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const database = nodePath.join(dir, "big3.db")
      const root = nodePath.join(dir, "agents")
      yield* legacyDatabase(database, "elder")
      fs.mkdirSync(nodePath.join(root, "elder"), { recursive: true })
      fs.writeFileSync(nodePath.join(root, "elder", "work.txt"), "the agent's work")

      yield* withAgents({ database, dir }, (harness) =>
        Effect.gen(function*() {
          const [elder] = yield* Agents.list
          assert.strictEqual(elder?.directory, nodePath.join(root, "elder"))
          const { operatorFile } = yield* Agents.command("elder", "carry on")
          assert.strictEqual(nodePath.dirname(operatorFile), nodePath.join(root, "elder"))
          yield* waitForEvent(harness, "AgentCommandFinished")
          assert.strictEqual((yield* Agents.result("elder")).file, operatorFile)

          const refused = yield* errorOf(Agents.delete("elder"))
          assert.strictEqual(refused._tag, "UnsafeAgentPath")
          assert.strictEqual(
            refused.message,
            `agent elder was registered by an older big3 that did not record its directory, so big3 will not remove ` +
              `any directory for it (under the current settings it would be ${nodePath.join(root, "elder")}, but ` +
              `nothing proves that directory is the agent's); remove it yourself if it is, then delete the agent with ` +
              `--keep-directory (Agents.delete(name, { keepDirectory: true })) to remove its registry entry`
          )
          assert.isTrue(fs.existsSync(nodePath.join(root, "elder", "work.txt")))
          assert.deepStrictEqual(
            (yield* Agents.list).map((agent) => [agent.name, agent.directoryRecorded]),
            [["elder", false]]
          )

          yield* Agents.delete("elder", { keepDirectory: true })
          assert.deepStrictEqual(yield* Agents.list, [])
          assert.isTrue(fs.existsSync(nodePath.join(root, "elder", "work.txt")))
          const deleted = harness.events.at(-1)!
          assert.deepStrictEqual(
            [deleted.hook_event_type, deleted.payload["kept_directory"]],
            ["AgentDeleted", true]
          )

          // The table got the columns, and a new agent records where it lives.
          const sql = yield* SqlClient.SqlClient
          const columns = (yield* sql<{ name: string }>`SELECT name FROM pragma_table_info('agents')`).map((column) => column.name)
          assert.deepStrictEqual(columns.slice(-2), ["root", "directory"])
          yield* Agents.create({ name: "junior", type: "claude_code" })
          const rows = yield* sql<{ root: string; directory: string }>`SELECT root, directory FROM agents WHERE name = 'junior'`
          assert.deepStrictEqual(rows, [{ root, directory: nodePath.join(root, "junior") }])
        }))
    }))

  it.scoped("a row recording a directory outside its agents root is refused, never removed", () =>
    withAgents({}, (harness) =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const created = yield* Agents.create({ name: "moved", type: "claude_code" })
        const elsewhere = nodePath.join(harness.dir, "elsewhere")
        fs.mkdirSync(elsewhere)
        yield* sql`UPDATE agents SET directory = ${elsewhere} WHERE name = 'moved'`
        const error = yield* errorOf(Agents.delete("moved"))
        assert.strictEqual(error._tag, "UnsafeAgentPath")
        assert.isTrue(fs.existsSync(elsewhere))
        assert.isTrue(fs.existsSync(created.directory))
      })))
})

// ---------------------------------------------------------------------------------------------

describe("Agents on disk: no symbolic link is followed out of an agent's directory", () => {
  it.scoped("a command refuses an agent directory replaced by a link: nothing is written outside", () =>
    withAgents({}, (harness) =>
      Effect.gen(function*() {
        const created = yield* Agents.create({ name: "hijacked", type: "claude_code" })
        const outside = nodePath.join(harness.dir, "outside")
        fs.mkdirSync(outside)
        fs.rmSync(created.directory, { recursive: true })
        fs.symlinkSync(outside, created.directory)

        const error = yield* errorOf(Agents.command("hijacked", "write here"))
        assert.strictEqual(error._tag, "UnsafeAgentPath")
        assert.deepStrictEqual(fs.readdirSync(outside), [])
        assert.strictEqual(yield* tagOf(Agents.result("hijacked")), "UnsafeAgentPath")
      })))

  it.effect("a running command whose directory becomes a link stops writing: nothing lands outside", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withAgents({ script: firstThenSecondAfter10s }, (harness) =>
        Effect.gen(function*() {
          const created = yield* Agents.create({ name: "swapped", type: "claude_code" })
          const { operatorFile } = yield* Agents.command("swapped", "work")
          yield* waitUntil(fileContains(operatorFile, "Text: first"), "the first progress line")
          const outside = nodePath.join(harness.dir, "outside")
          fs.mkdirSync(outside)
          fs.renameSync(created.directory, `${created.directory}-real`)
          fs.symlinkSync(outside, created.directory)

          yield* TestClock.adjust("10 seconds")
          yield* waitUntil(
            Effect.map(Agents.list, (agents) => agents[0]?.runningCommands === 0),
            "the command to end"
          )
          assert.deepStrictEqual(fs.readdirSync(outside), [])
          const kept = fs.readFileSync(nodePath.join(`${created.directory}-real`, nodePath.basename(operatorFile)), "utf8")
          assert.match(kept, /^- Status: running$/m)
        }))
    })))

  it.scoped("result refuses an operator file that is a link to a secret, by name or as the latest", () =>
    withAgents({}, (harness) =>
      Effect.gen(function*() {
        const created = yield* Agents.create({ name: "reader", type: "claude_code" })
        const { operatorFile } = yield* Agents.command("reader", "task")
        yield* waitForEvent(harness, "AgentCommandFinished")
        const secret = nodePath.join(harness.dir, "secret.txt")
        fs.writeFileSync(secret, "TOP-SECRET-TOKEN")

        // A newer name: it is what "the latest" picks.
        const planted = "operator-99991231T235959999Z-999999.md"
        fs.symlinkSync(secret, nodePath.join(created.directory, planted))
        for (const read of [Agents.result("reader"), Agents.result("reader", planted)]) {
          const error = yield* errorOf(read)
          assert.strictEqual(error._tag, "UnsafeAgentPath")
          assert.strictEqual(
            error.message,
            `${nodePath.join(created.directory, planted)} is a symbolic link; big3 does not follow links out of an ` +
              `agent's directory, so it was not read`
          )
        }

        // The real operator file replaced by a link.
        fs.rmSync(operatorFile)
        fs.symlinkSync(secret, operatorFile)
        assert.strictEqual(yield* tagOf(Agents.result("reader", operatorFile)), "UnsafeAgentPath")
        assert.strictEqual(fs.readFileSync(secret, "utf8"), "TOP-SECRET-TOKEN")
      })))

  it.scoped("result refuses an operator file hard-linked to a secret, by name or as the latest", () =>
    withAgents({}, (harness) =>
      Effect.gen(function*() {
        const created = yield* Agents.create({ name: "linked", type: "claude_code" })
        const { operatorFile } = yield* Agents.command("linked", "task")
        yield* waitForEvent(harness, "AgentCommandFinished")
        // big3's own writes (temp file + rename) leave one link, so normal reads are unaffected.
        assert.strictEqual(fs.statSync(operatorFile).nlink, 1)
        assert.match((yield* Agents.result("linked")).content, /^- Status: completed$/m)
        const secret = nodePath.join(harness.dir, "secret.txt")
        fs.writeFileSync(secret, "TOP-SECRET-TOKEN")

        const refusal = (file: string) =>
          `${file} has 2 hard links: the same file has another name, perhaps outside the agent's directory, and ` +
          `big3 writes its operator files with one link only, so it was not read`
        // A newer name: it is what "the latest" picks.
        const planted = nodePath.join(created.directory, "operator-99991231T235959999Z-999999.md")
        fs.linkSync(secret, planted)
        for (const read of [Agents.result("linked"), Agents.result("linked", nodePath.basename(planted))]) {
          const error = yield* errorOf(read)
          assert.strictEqual(error._tag, "UnsafeAgentPath")
          assert.strictEqual(error.message, refusal(planted))
        }
        fs.rmSync(planted)

        // The real operator file replaced by a hard link.
        fs.rmSync(operatorFile)
        fs.linkSync(secret, operatorFile)
        const error = yield* errorOf(Agents.result("linked", operatorFile))
        assert.strictEqual(error._tag, "UnsafeAgentPath")
        assert.strictEqual(error.message, refusal(operatorFile))
        assert.strictEqual(fs.readFileSync(secret, "utf8"), "TOP-SECRET-TOKEN")
      })))

  it.effect("a running command does not replace an operator file that became a hard link or a symbolic link", () =>
    Effect.scoped(Effect.gen(function*() {
      yield* withAgents({ script: firstThenSecondAfter10s }, (harness) =>
        Effect.gen(function*() {
          const secret = nodePath.join(harness.dir, "secret.txt")
          fs.writeFileSync(secret, "TOP-SECRET-TOKEN")
          yield* Agents.create({ name: "swapped", type: "claude_code" })
          const swaps = [
            { link: (file: string) => fs.linkSync(secret, file), isLink: (file: string) => fs.lstatSync(file).nlink === 2 },
            { link: (file: string) => fs.symlinkSync(secret, file), isLink: (file: string) => fs.lstatSync(file).isSymbolicLink() }
          ]
          for (const swap of swaps) {
            const { operatorFile } = yield* Agents.command("swapped", "work")
            yield* waitUntil(fileContains(operatorFile, "Text: first"), "the first progress line")
            fs.rmSync(operatorFile)
            swap.link(operatorFile)

            yield* TestClock.adjust("10 seconds")
            yield* waitUntil(Effect.map(Agents.list, (agents) => agents[0]?.runningCommands === 0), "the command to end")
            // Neither the progress nor the outcome replaced the planted link.
            assert.isTrue(swap.isLink(operatorFile), operatorFile)
            assert.strictEqual(fs.readFileSync(operatorFile, "utf8"), "TOP-SECRET-TOKEN")
            fs.rmSync(operatorFile)
          }
          assert.strictEqual(fs.readFileSync(secret, "utf8"), "TOP-SECRET-TOKEN")
          assert.strictEqual(fs.statSync(secret).nlink, 1)
        }))
    })))

  it.scoped("an agent directory replaced by a symbolic link to nowhere is UnsafeAgentPath, not missing", () =>
    withAgents({}, (harness) =>
      Effect.gen(function*() {
        const created = yield* Agents.create({ name: "dangling", type: "claude_code" })
        const nowhere = nodePath.join(harness.dir, "nowhere")
        fs.renameSync(created.directory, `${created.directory}-real`)
        fs.symlinkSync(nowhere, created.directory)
        const expected = `the directory of agent dangling, ${created.directory}, does not resolve: ${created.directory} ` +
          `was replaced by a symbolic link to something that does not exist, and big3 does not follow links out of an ` +
          `agent's directory; nothing was read, written or removed`
        for (const error of [yield* errorOf(Agents.command("dangling", "write here")), yield* errorOf(Agents.result("dangling"))]) {
          assert.strictEqual(error._tag, "UnsafeAgentPath")
          assert.strictEqual(error.message, expected)
        }
        assert.isFalse(fs.existsSync(nowhere))
        // A directory that is simply gone is still reported as missing.
        fs.rmSync(created.directory)
        const missing = yield* errorOf(Agents.result("dangling"))
        assert.strictEqual(missing._tag, "AgentStorageError")
        assert.strictEqual(missing.message, `the directory of agent dangling, ${created.directory}, is missing`)
      })))

  it.effect("a command stopped after its operator file became a link logs why its outcome was not written", () => {
    const logs = captureLogs()
    return Effect.scoped(Effect.gen(function*() {
      const script: Agents.Script = {
        run: () => Stream.concat(Stream.make(Agents.TextMessage.make({ text: "first" })), Stream.never)
      }
      yield* withAgents({ script }, (harness) =>
        Effect.gen(function*() {
          yield* Agents.create({ name: "stopped", type: "claude_code" })
          const { operatorFile } = yield* Agents.command("stopped", "work")
          yield* waitUntil(fileContains(operatorFile, "Text: first"), "the first progress line")
          const secret = nodePath.join(harness.dir, "secret.txt")
          fs.writeFileSync(secret, "TOP-SECRET-TOKEN")
          fs.rmSync(operatorFile)
          fs.symlinkSync(secret, operatorFile)

          // Deleting the agent interrupts the command, whose "interrupted" outcome is refused.
          yield* Agents.delete("stopped")
          assert.strictEqual(fs.readFileSync(secret, "utf8"), "TOP-SECRET-TOKEN")
          assert.deepStrictEqual(logs.lines.filter((line) => line.startsWith("ERROR")), [
            `ERROR agent stopped: could not record the outcome of ${operatorFile}: ${operatorFile} is a symbolic link; ` +
            `big3 does not follow links out of an agent's directory, so it was not written`
          ])
        }))
    })).pipe(Effect.provide(logs.layer))
  })

  it.scoped("result refuses a FIFO named like an operator file instead of hanging on it", () =>
    withAgents({}, () =>
      Effect.gen(function*() {
        const created = yield* Agents.create({ name: "piped", type: "claude_code" })
        const fifo = nodePath.join(created.directory, "operator-20250101T000000000Z-000001.md")
        execFileSync("mkfifo", [fifo])
        const error = yield* errorOf(Agents.result("piped"))
        assert.strictEqual(error._tag, "UnsafeAgentPath")
        assert.strictEqual(error.message, `${fifo} is not a regular file, so it was not read`)
      })))
})

// ---------------------------------------------------------------------------------------------

/** Node's file system, counting the bytes and calls of every `writeFile` (and `writeFileString`). */
const countingFileSystem = (counter: { writes: number; bytes: number }) =>
  Layer.effect(
    FileSystem.FileSystem,
    Effect.map(FileSystem.FileSystem, (node) =>
      FileSystem.make({
        ...node,
        writeFile: (path, data, options) =>
          Effect.suspend(() => {
            counter.writes++
            counter.bytes += data.byteLength
            return node.writeFile(path, data, options)
          })
      }))
  ).pipe(Layer.provide(NodeFileSystem.layer))

describe("Agents operator files: progress is written at a bounded rate", () => {
  it.scoped("2,000 progress messages write the operator file at most 3 times, not 2,002", () => {
    const counter = { writes: 0, bytes: 0 }
    const messages = 2_000
    // 600-character lines, as a chatty agent writes them: a full file is about 0.32 MB.
    const line = (i: number) => `${String(i).padStart(4, "0")} ${"x".repeat(595)}`
    const script: Agents.Script = {
      run: () =>
        Stream.range(1, messages).pipe(
          Stream.map((i) => Agents.TextMessage.make({ text: line(i) })),
          Stream.concat(Stream.make(Agents.ResultMessage.make({ text: "all done", isError: false })))
        )
    }
    return withAgents({ script, fileSystem: countingFileSystem(counter) }, (harness) =>
      Effect.gen(function*() {
        yield* Agents.create({ name: "chatty", type: "claude_code" })
        const before = { ...counter }
        const { operatorFile } = yield* Agents.command("chatty", "talk a lot")
        yield* waitForEvent(harness, "AgentCommandFinished")
        const writes = counter.writes - before.writes
        const bytes = counter.bytes - before.bytes
        const content = fs.readFileSync(operatorFile, "utf8")
        const size = Buffer.byteLength(content)

        // The preparation, at most one progress rewrite (the first message), and the outcome.
        assert.isAtLeast(writes, 2)
        assert.isAtMost(writes, 3, `${writes} writes, ${bytes} bytes`)
        assert.isAtMost(bytes, 3 * size)
        // The documented format, with the final status and the newest 500 progress lines.
        assert.match(content, /^- Status: completed$/m)
        const progress = content.split("## Progress\n\n")[1]!.split("\n\n## Result")[0]!.split("\n")
        assert.strictEqual(progress.length, 1 + Agents.maxProgressLines)
        assert.strictEqual(progress[0], `- … ${messages + 1 - Agents.maxProgressLines} earlier entries omitted`)
        assert.match(progress.at(-2)!, new RegExp(`^- \\S+ Text: ${line(messages)}$`))
        assert.match(progress.at(-1)!, /^- \S+ Result$/)
        assert.match(content, /## Result\n\nall done\n/)
      }))
  })

  const sleepsInclude = (at: number) => Effect.map(TestClock.sleeps(), (sleeps) => Array.from(sleeps).includes(at))

  it.effect("progress reaches the file at once, then at most once a second", () =>
    Effect.scoped(Effect.gen(function*() {
      const counter = { writes: 0, bytes: 0 }
      const text = (t: string) => Agents.TextMessage.make({ text: t })
      const script: Agents.Script = {
        run: () =>
          Stream.make(text("one")).pipe(
            Stream.concat(Stream.fromEffect(Effect.as(Effect.sleep("100 millis"), text("two")))),
            Stream.concat(Stream.fromEffect(Effect.as(Effect.sleep("10 seconds"), text("three")))),
            Stream.concat(Stream.never)
          )
      }
      yield* withAgents({ script, fileSystem: countingFileSystem(counter) }, () =>
        Effect.gen(function*() {
          yield* Agents.create({ name: "steady", type: "claude_code" })
          const before = counter.writes
          const { operatorFile } = yield* Agents.command("steady", "pace yourself")
          yield* waitUntil(fileContains(operatorFile, "Text: one"), "the first message, written at once")
          assert.strictEqual(counter.writes - before, 2)
          // The writer sleeps out its interval after a write: the clock moves only once that sleep
          // is registered, or it would start later than the write and the test would race it.
          yield* waitUntil(sleepsInclude(1_000), "the writer's interval after the first write")

          yield* TestClock.adjust("100 millis")
          yield* waitUntil(
            Effect.map(TestClock.sleeps(), (sleeps) => Array.from(sleeps).includes(10_100)),
            "the second message to be taken"
          )
          for (let i = 0; i < 20; i++) yield* settle
          // Within the interval: in memory, not yet rewritten.
          assert.strictEqual(counter.writes - before, 2)
          assert.isFalse(yield* fileContains(operatorFile, "Text: two"))

          yield* TestClock.adjust("900 millis")
          yield* waitUntil(fileContains(operatorFile, "Text: two"), "the second message, one interval later")
          yield* waitUntil(sleepsInclude(2_000), "the writer's interval after the second write")
          yield* TestClock.adjust("9100 millis")
          yield* waitUntil(fileContains(operatorFile, "Text: three"), "the third message")
          assert.strictEqual(counter.writes - before, 4)
          assert.match(fs.readFileSync(operatorFile, "utf8"), /^- Status: running$/m)
        }))
    })))
})
