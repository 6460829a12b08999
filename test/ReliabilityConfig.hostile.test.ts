/**
 * Hostile and mistaken configuration: every case ends in a `ConfigError` that names the key and
 * shows at most a bounded part of the value, at once, with bounded memory.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as ClaudeAgentSdk from "../src/agents/ClaudeAgentSdk.js"
import * as Observability from "../src/Observability.js"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"
import { failureMessage, readConfig } from "./support/config.js"

const loadWith = (entries: Record<string, string>) =>
  ReliabilityConfig.load.pipe(
    Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(entries)), { pathDelim: "_" }))
  )

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-hostile-config-"))
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
let files = 0
const tempFile = (contents: string): string => {
  const file = path.join(dir, `config-${++files}.json`)
  fs.writeFileSync(file, contents)
  return file
}

const deep = (depth: number) => "[".repeat(depth) + "]".repeat(depth)

describe("ReliabilityConfig against hostile input", () => {
  it.effect("a value nested 100,000 deep is a ConfigError, not a stack overflow", () =>
    Effect.gen(function*() {
      const file = tempFile(`{"gemini_api": ${deep(100_000)}}`)
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_CONFIG: file }))),
        `BIG3_CONFIG=${file}: "gemini_api" must be a number or a string, got an array of 1 item`
      )
      const top = tempFile(deep(100_000))
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_CONFIG: top }))),
        `BIG3_CONFIG=${top}: expected a JSON object at the top level, got an array of 1 item`
      )
      const overrides = failureMessage(yield* Effect.exit(ReliabilityConfig.make(JSON.parse(`{"timeouts": {"gemini_api": ${deep(100_000)}}}`))))
      assert.strictEqual(
        overrides,
        `the overrides given to layerWith: "timeouts.gemini_api" must be a number or a string, got an array of 1 item`
      )
    }))

  it.effect("a 10 MB value is shown as its first 80 characters and its length", () =>
    Effect.gen(function*() {
      const huge = "9".repeat(10 * 1024 * 1024) + "x"
      const message = failureMessage(yield* Effect.exit(loadWith({ BIG3_TIMEOUT_GEMINI_API: huge })))
      assert.strictEqual(
        message,
        `BIG3_TIMEOUT_GEMINI_API="${"9".repeat(80)}"… (10,485,761 characters) (from the environment) is not valid: ` +
          `expected a positive number of seconds (45, 0.5) or a duration such as "1500 millis" or "2 minutes"`
      )
      const nameMessage = failureMessage(yield* Effect.exit(ReliabilityConfig.make(JSON.parse(`{"${"k".repeat(1_000_000)}": 1}`))))
      assert.strictEqual(
        nameMessage,
        `the overrides given to layerWith: unknown key "${"k".repeat(80)}… (1,000,000 characters)"; expected timeouts, ` +
          `timeoutBounds, retry, breakers, budget, adaptive, an operation id or a BIG3_* name`
      )
    }))

  it.effect("300,000 unknown keys make one short message: ten described, the rest counted", () =>
    Effect.gen(function*() {
      const overrides: Record<string, number> = {}
      for (let i = 0; i < 300_000; i++) overrides[`unknown_${i}`] = i
      const message = failureMessage(yield* Effect.exit(ReliabilityConfig.make(overrides)))
      const described = Array.from(
        { length: 10 },
        (_, i) =>
          `unknown key "unknown_${i}"; expected timeouts, timeoutBounds, retry, breakers, budget, adaptive, an operation id or a BIG3_* name`
      )
      assert.strictEqual(
        message,
        `the overrides given to layerWith: ${described.join("; ")}; and 299,990 more problems`
      )
    }))

  it.effect("a config file over 1 MiB is refused before it is parsed", () =>
    Effect.gen(function*() {
      const file = tempFile(`{"gemini_api": "${" ".repeat(2 * 1024 * 1024)}"}`)
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_CONFIG: file }))),
        `BIG3_CONFIG=${file}: the file is 2097170 bytes; expected at most 1048576`
      )
    }))

  it.effect("/dev/zero as BIG3_CONFIG is refused without reading it", () =>
    Effect.gen(function*() {
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_CONFIG: "/dev/zero" }))),
        `BIG3_CONFIG=/dev/zero: it is a character device; expected a regular file`
      )
    }))

  it.effect("a FIFO as BIG3_CONFIG is refused at once, with no writer (the open does not block)", () =>
    Effect.gen(function*() {
      const fifo = path.join(dir, "config.fifo")
      execFileSync("mkfifo", [fifo])
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_CONFIG: fifo }))),
        `BIG3_CONFIG=${fifo}: it is a FIFO; expected a regular file`
      )
    }))

  it.effect("a directory as BIG3_CONFIG is refused", () =>
    Effect.gen(function*() {
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_CONFIG: dir }))),
        `BIG3_CONFIG=${dir}: it is a directory; expected a regular file`
      )
    }))

  it.effect("0x10, 1e1 and Infinity are not counts: plain decimal digits only", () =>
    Effect.gen(function*() {
      const expected = "expected a whole number of attempts from 1 to 1000"
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_RETRY_GEMINI_MAX_ATTEMPTS: "0x10" }))),
        `BIG3_RETRY_GEMINI_MAX_ATTEMPTS="0x10" (from the environment) is not valid: ${expected}, written in plain decimal digits`
      )
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_RETRY_GEMINI_MAX_ATTEMPTS: "1e1" }))),
        `BIG3_RETRY_GEMINI_MAX_ATTEMPTS="1e1" (from the environment) is not valid: ${expected}, written in plain decimal digits`
      )
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_BREAKER_GEMINI_FAILURE_RATIO: "Infinity" }))),
        `BIG3_BREAKER_GEMINI_FAILURE_RATIO="Infinity" (from the environment) is not valid: expected a ratio above 0, at most 1`
      )
      const config = yield* loadWith({ BIG3_RETRY_GEMINI_MAX_ATTEMPTS: " 16 ", BIG3_RETRY_GEMINI_FACTOR: "1.5" })
      assert.strictEqual(config.policyOf("gemini").maxAttempts, 16)
      assert.strictEqual(config.policyOf("gemini").factor, 1.5)
    }))

  it.effect("a failure threshold of 1e300 is refused: every count has an upper bound", () =>
    Effect.gen(function*() {
      const file = tempFile(JSON.stringify({ breakers: { gemini: { failureThreshold: 1e300 } } }))
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_CONFIG: file }))),
        `BIG3_BREAKER_GEMINI_FAILURE_THRESHOLD=1e+300 (from the config file) is not valid: ` +
          `expected a whole number of failures from 1 to 1,000,000`
      )
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_BUDGET_MIN_RETRIES: "1000001" }))),
        `BIG3_BUDGET_MIN_RETRIES="1000001" (from the environment) is not valid: expected a whole number of retries from 0 to 1,000,000`
      )
    }))

  it.effect("BIG3_TIMEOUT_MAX of 100 days is refused: no timer can wait past 24.8 days", () =>
    Effect.gen(function*() {
      const why = `expected a positive number of seconds (45, 0.5) or a duration such as "1500 millis" or "2 minutes"; ` +
        `it is longer than 24.8 days, the longest wait a timer can take`
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_TIMEOUT_MAX: "100 days", BIG3_TIMEOUT_GEMINI_API: "30 days" }))),
        `BIG3_TIMEOUT_MAX="100 days" (from the environment) is not valid: ${why}`
      )
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_RETRY_GEMINI_MAX_DELAY: "30 days" }))),
        `BIG3_RETRY_GEMINI_MAX_DELAY="30 days" (from the environment) is not valid: ${why}`
      )
      assert.strictEqual(
        failureMessage(yield* Effect.exit(loadWith({ BIG3_BREAKER_GEMINI_OPEN_DURATION: "1e400" }))),
        `BIG3_BREAKER_GEMINI_OPEN_DURATION="1e400" (from the environment) is not valid: ` +
          `expected a positive number of seconds (45, 0.5) or a duration such as "1500 millis" or "2 minutes"`
      )
      // The longest allowed maximum holds, and a timeout beyond the maximum is still clamped to it.
      const config = yield* loadWith({ BIG3_TIMEOUT_MAX: "24 days", BIG3_TIMEOUT_GEMINI_API: "30 days" })
      assert.strictEqual(Duration.toMillis(config.timeoutOf("gemini_api")), 24 * 86_400_000)
      const clamped = yield* loadWith({ BIG3_TIMEOUT_GEMINI_API: "99999999999" })
      assert.strictEqual(Duration.toMillis(clamped.timeoutOf("gemini_api")), 600_000)
    }))

  it.effect("the counts read outside ReliabilityConfig (events, agent SDK) take plain decimal digits within bounds too", () =>
    Effect.gen(function*() {
      assert.strictEqual(
        failureMessage(yield* readConfig(Observability.config, { BIG3_EVENTS_BATCH_SIZE: "0x10" })),
        `BIG3_EVENTS_BATCH_SIZE="0x10" is not valid: expected a whole number from 1 to 100000, written in plain decimal digits`
      )
      assert.strictEqual(
        failureMessage(yield* readConfig(ClaudeAgentSdk.config, { CLAUDE_AGENT_MAX_TURNS: "1e300" })),
        `CLAUDE_AGENT_MAX_TURNS="1e300" is not valid: expected a whole number from 1 to 10000, written in plain decimal digits`
      )
      assert.strictEqual(
        failureMessage(yield* readConfig(ClaudeAgentSdk.config, { CLAUDE_AGENT_MAX_TURNS: "100000000" })),
        `CLAUDE_AGENT_MAX_TURNS="100000000" is not valid: expected a whole number from 1 to 10000`
      )
      const events = yield* Effect.withConfigProvider(
        Observability.config,
        ConfigProvider.fromMap(new Map([["BIG3_EVENTS_BATCH_SIZE", " 16 "]]))
      )
      assert.strictEqual(events.batchSize, 16)
      const sdk = yield* Effect.withConfigProvider(ClaudeAgentSdk.config, ConfigProvider.fromMap(new Map()))
      assert.deepStrictEqual([sdk.maxTurns, sdk.maxRetries], [undefined, 2])
    }))
})
