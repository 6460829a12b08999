/**
 * Agents on disk: path settings are read one way.
 */
import { assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as nodePath from "node:path"
import * as Agents from "../src/Agents.js"
import * as Store from "../src/Store.js"

const withEnv = (env: Record<string, string>) =>
  Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" }))

// ---------------------------------------------------------------------------------------------

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
