import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as Agents from "../src/Agents.js"
import * as Gemini from "../src/Gemini.js"
import * as Observability from "../src/Observability.js"
import * as Runtime from "../src/Runtime.js"
import * as Sandbox from "../src/Sandbox.js"

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
})
