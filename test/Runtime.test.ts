import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Agents from "../src/Agents.js"
import * as Gemini from "../src/Gemini.js"
import * as Observability from "../src/Observability.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import * as Runtime from "../src/Runtime.js"
import * as Sandbox from "../src/Sandbox.js"
import * as Store from "../src/Store.js"

describe("Runtime", () => {
  it.scopedLive("makeRuntime serves Promise callers with every client, and dispose flushes events", () =>
    Effect.gen(function*() {
      const sandbox = yield* Sandbox.make()
      const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-runtime-"))
      yield* Effect.addFinalizer(() => Effect.sync(() => fs.rmSync(stateDir, { recursive: true, force: true })))
      const runtime = Runtime.makeRuntime({
        agentBackend: Agents.scriptedBackend(),
        configProvider: ConfigProvider.fromMap(new Map([
          ["GEMINI_API_KEY", "sandbox-key"],
          ["GEMINI_BASE_URL", sandbox.url],
          ["OBSERVABILITY_SERVER_URL", `${sandbox.url}/events`],
          ["BIG3_STATE_DIR", stateDir]
        ]))
      })
      // What a Promise-based app does: runPromise per call, dispose at exit.
      const answer = yield* Effect.promise(() =>
        runtime.runPromise(Gemini.generateContent({ contents: [Gemini.userTurn("hello runtime")] }))
      )
      assert.strictEqual(Gemini.text(answer), "sandbox answer to: hello runtime")
      const created = yield* Effect.promise(() => runtime.runPromise(Agents.create({ name: "runtime-test", type: "claude-code" })))
      assert.strictEqual(created.name, "runtime-test")
      assert.isTrue(fs.existsSync(path.join(stateDir, "agents", "runtime-test")), "agents live under BIG3_STATE_DIR")
      assert.isTrue(fs.existsSync(path.join(stateDir, "big3.db")), "the store is BIG3_STATE_DIR/big3.db")
      for (let i = 0; i < 50; i++) {
        yield* Effect.promise(() =>
          runtime.runPromise(Observability.emit({ source_app: "test", session_id: "runtime", hook_event_type: "Tick", payload: { i } }))
        )
      }
      yield* Effect.promise(() => runtime.dispose())
      const stored = (yield* sandbox.events).filter((event) => event.session_id === "runtime")
      assert.strictEqual(stored.length, 50, "dispose flushed every emitted event")
    }), 30_000)

  it.scoped("stages taken from one stagesWith share one store and one configuration", () =>
    Effect.gen(function*() {
      const builds = { store: 0, config: 0 }
      const store = Layer.scopedContext(Effect.suspend(() => {
        builds.store++
        return Layer.build(Store.layerMemory)
      }))
      const config = Layer.effect(ReliabilityConfig.ReliabilityConfig, Effect.suspend(() => {
        builds.config++
        return ReliabilityConfig.make()
      }))
      const stages = Runtime.stagesWith({ store, config })
      yield* Layer.build(Layer.mergeAll(stages.foundation, stages.observability, stages.gemini))
      assert.deepStrictEqual(builds, { store: 1, config: 1 })
    }))

  it.scoped("geminiWith builds Gemini on configuration, breakers and HTTP only: no store is opened", () =>
    Effect.gen(function*() {
      const stateDir = path.join(os.tmpdir(), `big3-runtime-gemini-${process.pid}`)
      const context = yield* Layer.build(Runtime.geminiWith({
        configProvider: ConfigProvider.fromMap(new Map([["BIG3_STATE_DIR", stateDir]]))
      }))
      assert.isDefined(Context.get(context, Gemini.Gemini).generateContent)
      assert.isFalse(fs.existsSync(stateDir))
    }))
})
