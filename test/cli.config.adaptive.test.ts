import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as Adaptive from "../src/Adaptive.js"
import { bucketOf, upperBoundOf } from "../src/adaptive/LatencyWindow.js"
import * as Saved from "../src/adaptive/Saved.js"
import { formatDuration } from "../src/Errors.js"
import * as Store from "../src/Store.js"
import { big3 } from "./support/cli.js"
import { tempDir } from "./support/tempDir.js"

/** A state directory whose store holds 812 samples of gemini_api at 400 ms, as a runtime saves them. */
const withSavedState = <A, E>(use: (dir: string) => Effect.Effect<A, E>) =>
  Effect.scoped(
    Effect.flatMap(tempDir("big3-config-adaptive-"), (dir) =>
      Effect.zipRight(
        Effect.scoped(Effect.flatMap(Store.make({ filename: Store.databasePath(dir) }), (client) =>
          Effect.zipRight(
            Adaptive.loadSaved,
            Saved.save([{
              operation: "gemini_api",
              samples: 812,
              learnedMillis: 1200,
              p99Millis: 400,
              configuredMillis: 45_000,
              buckets: [[bucketOf(400), 812]],
              updatedAt: 0
            }])
          ).pipe(Effect.provideService(SqlClient.SqlClient, client)))),
        use(dir)
      ))
  )

const learned = formatDuration(Duration.millis(Math.ceil(upperBoundOf(bucketOf(400)) * 3)))

describe("big3 config with adaptive timeouts", () => {
  it.live("shows each adaptive operation's learned timeout beside its configured one", () =>
    withSavedState((dir) =>
      Effect.gen(function*() {
        const { stdout } = yield* big3(["config"], {
          BIG3_STATE_DIR: dir,
          BIG3_ADAPTIVE_GEMINI_API: "on",
          BIG3_ADAPTIVE_OPENAI_API: "on"
        })
        const section = stdout.slice(stdout.indexOf("Adaptive timeouts (")).split("\n")
        assert.deepStrictEqual(section, [
          "Adaptive timeouts (configured timeout, its source, what is learned)",
          "openai_api  30s  default  adaptive: learning, 0/50 samples",
          `gemini_api  45s  default  adaptive: learned ${learned} from 812 samples`
        ])
      })
    ))

  it.live("--json carries { adaptive: { enabled, learned?, samples } } on each timeout", () =>
    withSavedState((dir) =>
      Effect.gen(function*() {
        const { stdout } = yield* big3(["config", "--json"], {
          BIG3_STATE_DIR: dir,
          BIG3_ADAPTIVE_GEMINI_API: "on",
          BIG3_ADAPTIVE_OPENAI_API: "on"
        })
        const parsed: { entries: Array<{ key: string; adaptive?: unknown }> } = JSON.parse(stdout)
        const adaptiveOf = (key: string) => parsed.entries.find((entry) => entry.key === key)?.adaptive
        assert.deepStrictEqual(adaptiveOf("BIG3_TIMEOUT_GEMINI_API"), {
          enabled: true,
          learned: Math.ceil(upperBoundOf(bucketOf(400)) * 3) / 1000,
          samples: 812
        })
        assert.deepStrictEqual(adaptiveOf("BIG3_TIMEOUT_OPENAI_API"), { enabled: true, samples: 0 })
        assert.deepStrictEqual(adaptiveOf("BIG3_TIMEOUT_AGENT_CREATION"), { enabled: false, samples: 0 })
      })
    ))

  it.live("with no store yet, every adaptive operation is learning, and no store is created", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("big3-config-adaptive-")
      const { stdout } = yield* big3(["config"], { BIG3_STATE_DIR: dir, BIG3_ADAPTIVE_GEMINI_API: "on" })
      assert.isTrue(stdout.endsWith("gemini_api  45s  default  adaptive: learning, 0/50 samples"))
      assert.isFalse(fs.existsSync(Store.databasePath(dir)))
    }).pipe(Effect.scoped))
})
