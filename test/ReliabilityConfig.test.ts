import { afterAll, assert, describe, it } from "@effect/vitest"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as ReliabilityConfig from "../src/ReliabilityConfig.js"

const fromEnv = (entries: Record<string, string>) =>
  ConfigProvider.fromMap(new Map(Object.entries(entries)), { pathDelim: "_" })

/** Loads the config through a map ConfigProvider, as the environment would be read. */
const loadWith = (entries: Record<string, string>) =>
  ReliabilityConfig.load.pipe(Effect.withConfigProvider(fromEnv(entries)))

const tempDirs: Array<string> = []
afterAll(() => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
})

const tempFile = (contents: string): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-config-"))
  tempDirs.push(dir)
  const file = path.join(dir, "big3.json")
  fs.writeFileSync(file, contents)
  return file
}

const seconds = (duration: Duration.Duration) => Duration.toMillis(duration) / 1000

/** Captures log messages while running `self`. */
const captureLogs = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    })
    const exit = yield* Effect.exit(self.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger))))
    return { exit, lines }
  })

describe("ReliabilityConfig", () => {
  it.effect("has every operation id of the design table with its default", () =>
    Effect.gen(function*() {
      const config = yield* loadWith({})
      const expected: Record<string, number> = {
        http_request: 10,
        http_request_short: 5,
        http_request_long: 30,
        websocket_connect: 15,
        websocket_message: 30,
        websocket_close: 5,
        openai_api: 30,
        anthropic_api: 60,
        gemini_api: 45,
        groq_api: 20,
        agent_creation: 60,
        agent_execution: 300,
        agent_cleanup: 10,
        operator_file_prep: 60,
        browser_startup: 30,
        browser_page_load: 15,
        browser_automation: 120,
        browser_screenshot: 10,
        claude_code_create: 90,
        claude_code_execute: 600,
        claude_code_cleanup: 15,
        db_query: 5,
        db_transaction: 10,
        db_connection: 3,
        redis_connect: 3,
        redis_command: 2,
        redis_lock: 30,
        file_read: 5,
        file_write: 10,
        file_open: 5,
        audio_device_init: 5,
        audio_stream_start: 3,
        audio_stream_stop: 2,
        observability_event: 2,
        observability_batch: 5,
        observability_health: 1,
        subprocess: 30,
        subprocess_quick: 5,
        subprocess_long: 120,
        graceful_shutdown: 10,
        thread_join: 5,
        executor_shutdown: 30,
        auto_prompt_default: 300,
        auto_prompt_response: 60
      }
      assert.deepStrictEqual(
        Object.fromEntries(Array.from(config.timeouts, ([id, value]) => [id, seconds(value)])),
        expected
      )
      assert.isTrue(config.entries.filter((entry) => entry.kind === "timeout").every((entry) => entry.source === "default"))
    }))

  it.effect("has the six retry policies and the breakers with their defaults", () =>
    Effect.gen(function*() {
      const config = yield* loadWith({})
      const summary = Object.fromEntries(
        Array.from(config.policies, ([name, policy]) => [
          name,
          [policy.maxAttempts, seconds(policy.initialDelay), policy.factor, seconds(policy.maxDelay), policy.jitter]
        ])
      )
      assert.deepStrictEqual(summary, {
        default: [3, 1, 2, 60, "proportional"],
        network: [3, 1, 2, 60, "proportional"],
        api: [5, 2, 2, 60, "proportional"],
        gemini: [3, 2, 2, 60, "proportional"],
        anthropic: [3, 2, 2, 60, "proportional"],
        observability: [2, 0.5, 2, 60, "proportional"]
      })
      const breakers = Object.fromEntries(
        Array.from(config.breakers, ([name, b]) => [name, [b.failureThreshold, seconds(b.openDuration), b.halfOpenMaxCalls, b.successThreshold]])
      )
      assert.deepStrictEqual(breakers.gemini, [5, 60, 3, 3])
      assert.deepStrictEqual(breakers.observability, [5, 30, 3, 3])
      assert.deepStrictEqual(breakers.anthropic, [5, 60, 3, 3])
      assert.deepStrictEqual(
        [config.budget.enabled, config.budget.ratio, seconds(config.budget.window), config.budget.minRetries],
        [true, 0.2, 10, 3]
      )
    }))

  it.effect("reads timeouts as seconds or duration strings from the ConfigProvider", () =>
    Effect.gen(function*() {
      const config = yield* loadWith({
        BIG3_TIMEOUT_GEMINI_API: "30",
        BIG3_TIMEOUT_DB_QUERY: "0.5",
        BIG3_TIMEOUT_AGENT_CREATION: "2 minutes",
        BIG3_TIMEOUT_FILE_READ: "1500 millis"
      })
      assert.strictEqual(seconds(config.timeoutOf("gemini_api")), 30)
      assert.strictEqual(seconds(config.timeoutOf("db_query")), 0.5)
      assert.strictEqual(seconds(config.timeoutOf("agent_creation")), 120)
      assert.strictEqual(seconds(config.timeoutOf("file_read")), 1.5)
      assert.strictEqual(config.entries.find((e) => e.key === "BIG3_TIMEOUT_GEMINI_API")?.source, "env")
      assert.strictEqual(seconds(yield* ReliabilityConfig.timeout("gemini_api").pipe(
        Effect.provideService(ReliabilityConfig.ReliabilityConfig, config)
      )), 30)
    }))

  it.effect("reads retry policy and breaker fields from the environment", () =>
    Effect.gen(function*() {
      const config = yield* loadWith({
        BIG3_RETRY_GEMINI_MAX_ATTEMPTS: "4",
        BIG3_RETRY_GEMINI_JITTER: "none",
        BIG3_RETRY_GEMINI_INITIAL_DELAY: "500 millis",
        BIG3_RETRY_GEMINI_MAX_DELAY: "10",
        BIG3_BREAKER_GEMINI_FAILURE_THRESHOLD: "7",
        BIG3_BREAKER_GEMINI_MODE: "ratio",
        BIG3_BUDGET_RATIO: "0.5"
      })
      const gemini = config.policyOf("gemini")
      assert.deepStrictEqual(
        [gemini.maxAttempts, gemini.jitter, seconds(gemini.initialDelay), seconds(gemini.maxDelay)],
        [4, "none", 0.5, 10]
      )
      assert.strictEqual(config.breakerOf("gemini").failureThreshold, 7)
      assert.strictEqual(config.breakerOf("gemini").mode, "ratio")
      assert.strictEqual(config.budget.ratio, 0.5)
    }))

  it.effect("clamps timeouts into [min, max] with a warning naming the key", () =>
    Effect.gen(function*() {
      const { exit, lines } = yield* captureLogs(loadWith({
        BIG3_TIMEOUT_GEMINI_API: "5000",
        BIG3_TIMEOUT_DB_QUERY: "0.01"
      }))
      assert.strictEqual(exit._tag, "Success")
      if (exit._tag !== "Success") return
      assert.strictEqual(seconds(exit.value.timeoutOf("gemini_api")), 600)
      assert.strictEqual(seconds(exit.value.timeoutOf("db_query")), 0.1)
      assert.isTrue(lines.some((line) => line.startsWith("WARN") && line.includes("BIG3_TIMEOUT_GEMINI_API")))
      assert.isTrue(lines.some((line) => line.startsWith("WARN") && line.includes("BIG3_TIMEOUT_DB_QUERY")))
    }))

  it.effect("a variable in a setting's family that big3 does not read is named in a warning, with a hint", () =>
    Effect.gen(function*() {
      const { exit, lines } = yield* captureLogs(loadWith({
        BIG3_TIMEOUT_GEMNI_API: "1",
        BIG3_RETRY_GEMINI_MAX_ATTEMPT: "4",
        BIG3_BREAKER_NOBODY_KNOWS_THIS: "1",
        BIG3_TIMEOUT_GEMINI_API: "30",
        BIG3_EVENTS_MODE: "single"
      }))
      assert.strictEqual(exit._tag, "Success")
      assert.deepStrictEqual(lines.filter((line) => line.includes("is not a setting")).sort(), [
        `WARN BIG3_BREAKER_NOBODY_KNOWS_THIS is not a setting big3 reads, so it is ignored`,
        `WARN BIG3_RETRY_GEMINI_MAX_ATTEMPT is not a setting big3 reads, so it is ignored (did you mean "BIG3_RETRY_GEMINI_MAX_ATTEMPTS"?)`,
        `WARN BIG3_TIMEOUT_GEMNI_API is not a setting big3 reads, so it is ignored (did you mean "BIG3_TIMEOUT_GEMINI_API"?)`
      ])
    }))

  const badValues: ReadonlyArray<readonly [string, string, string]> = [
    ["BIG3_TIMEOUT_GEMINI_API", "abc", "expected a positive number of seconds"],
    ["BIG3_TIMEOUT_GEMINI_API", "-5", "negative"],
    ["BIG3_TIMEOUT_GEMINI_API", "0", "zero"],
    ["BIG3_TIMEOUT_GEMINI_API", "", "expected"],
    ["BIG3_TIMEOUT_GEMINI_API", "10 parsecs", "expected"],
    ["BIG3_RETRY_GEMINI_MAX_ATTEMPTS", "0", "whole number of attempts"],
    ["BIG3_RETRY_GEMINI_MAX_ATTEMPTS", "2.5", "whole number of attempts"],
    ["BIG3_RETRY_GEMINI_JITTER", "sometimes", `"proportional", "none"`],
    ["BIG3_RETRY_API_FACTOR", "0.5", "growth factor"],
    ["BIG3_BREAKER_GEMINI_FAILURE_RATIO", "1.5", "ratio"]
  ]
  for (const [key, value, expectation] of badValues) {
    it.effect(`fails with a ConfigError naming ${key}=${JSON.stringify(value)}`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(loadWith({ [key]: value }))
        assert.strictEqual(error._op, "InvalidData")
        assert.include(error.message, key)
        assert.include(error.message, JSON.stringify(value))
        assert.include(error.message, expectation)
      }))
  }

  it.effect("file overrides defaults, environment overrides the file", () =>
    Effect.gen(function*() {
      const file = tempFile(JSON.stringify({
        timeouts: { gemini_api: 30, agent_creation: "90 seconds" },
        retry: { gemini: { maxAttempts: 5, jitter: "none" } },
        breakers: { observability: { openDuration: 10 } }
      }))
      const config = yield* loadWith({ BIG3_CONFIG: file, BIG3_TIMEOUT_GEMINI_API: "20" })
      assert.strictEqual(seconds(config.timeoutOf("gemini_api")), 20)
      assert.strictEqual(seconds(config.timeoutOf("agent_creation")), 90)
      assert.strictEqual(config.policyOf("gemini").maxAttempts, 5)
      assert.strictEqual(config.policyOf("gemini").jitter, "none")
      assert.strictEqual(seconds(config.breakerOf("observability").openDuration), 10)
      const sourceOf = (key: string) => config.entries.find((entry) => entry.key === key)?.source
      assert.strictEqual(sourceOf("BIG3_TIMEOUT_GEMINI_API"), "env")
      assert.strictEqual(sourceOf("BIG3_TIMEOUT_AGENT_CREATION"), "file")
      assert.strictEqual(sourceOf("BIG3_RETRY_GEMINI_MAX_ATTEMPTS"), "file")
      assert.strictEqual(sourceOf("BIG3_TIMEOUT_DB_QUERY"), "default")
      assert.strictEqual(config.configFile, file)
    }))

  it.effect("a config file key with a typo is an error that names it", () =>
    Effect.gen(function*() {
      const file = tempFile(JSON.stringify({ timeouts: { gemini_apii: 30 } }))
      const error = yield* Effect.flip(loadWith({ BIG3_CONFIG: file }))
      assert.include(error.message, "gemini_apii")
      assert.include(error.message, `did you mean "gemini_api"`)
    }))

  it.effect("unknown top-level and policy keys in the file are errors", () =>
    Effect.gen(function*() {
      const top = yield* Effect.flip(loadWith({ BIG3_CONFIG: tempFile(JSON.stringify({ timeout: {} })) }))
      assert.include(top.message, `unknown key "timeout"`)
      const field = yield* Effect.flip(loadWith({
        BIG3_CONFIG: tempFile(JSON.stringify({ retry: { gemini: { maxAttempt: 3 } } }))
      }))
      assert.include(field.message, "retry.gemini.maxAttempt")
      assert.include(field.message, "maxAttempts")
    }))

  it.effect("a missing config file is an error naming the file", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(loadWith({ BIG3_CONFIG: "/nonexistent/big3.json" }))
      assert.include(error.message, "/nonexistent/big3.json")
      assert.include(error.message, "does not exist")
    }))

  it.effect("BIG3_CONFIG is read as every path setting is: trimmed, blank is unset, a NUL is a ConfigError", () =>
    Effect.gen(function*() {
      const file = tempFile(JSON.stringify({ timeouts: { gemini_api: 30 } }))
      const padded = yield* loadWith({ BIG3_CONFIG: `  ${file}  ` })
      assert.strictEqual(padded.configFile, file)
      assert.strictEqual(seconds(padded.timeoutOf("gemini_api")), 30)
      const blank = yield* loadWith({ BIG3_CONFIG: "   " })
      assert.strictEqual(blank.configFile, undefined)
      const error = yield* Effect.flip(loadWith({ BIG3_CONFIG: `${file}\u0000` }))
      assert.strictEqual(error._op, "InvalidData")
      assert.strictEqual(error.message, "BIG3_CONFIG: a path cannot contain a NUL character")
    }))

  it.effect("a config file that is not JSON is an error", () =>
    Effect.gen(function*() {
      const file = tempFile("{ timeouts: ")
      const error = yield* Effect.flip(loadWith({ BIG3_CONFIG: file }))
      assert.include(error.message, file)
      assert.include(error.message, "not valid JSON")
    }))

  it.effect("a JSON error quotes nothing of the file: it may hold a secret", () =>
    Effect.gen(function*() {
      const file = tempFile(`{"timeouts": {"gemini_api": 30}, "key": AIzaSECRETSECRETSECRET}`)
      const error = yield* Effect.flip(loadWith({ BIG3_CONFIG: file }))
      assert.include(error.message, "not valid JSON (Unexpected token 'A')")
      assert.notInclude(error.message, "AIzaS")
      assert.notInclude(error.message, "timeouts")
      const atStart = yield* Effect.flip(loadWith({ BIG3_CONFIG: tempFile("AIzaSECRETSECRETSECRET") }))
      assert.include(atStart.message, "not valid JSON (Unexpected token 'A')")
      assert.notInclude(atStart.message, "AIzaS")
    }))

  it.effect("a bad value in the file names the key, the value and the file as its source", () =>
    Effect.gen(function*() {
      const file = tempFile(JSON.stringify({ timeouts: { gemini_api: -1 } }))
      const error = yield* Effect.flip(loadWith({ BIG3_CONFIG: file }))
      assert.include(error.message, "BIG3_TIMEOUT_GEMINI_API=-1")
      assert.include(error.message, "config file")
      assert.include(error.message, "negative")
    }))

  it.effect("layerWith builds from plain overrides, and timeoutOr falls back for unknown names", () =>
    Effect.gen(function*() {
      const config = yield* ReliabilityConfig.ReliabilityConfig
      assert.strictEqual(seconds(config.timeoutOf("gemini_api")), 1)
      assert.strictEqual(config.policyOf("gemini").maxAttempts, 4)
      assert.strictEqual(seconds(yield* ReliabilityConfig.timeoutOr("my_custom_op", "3 seconds")), 3)
      assert.strictEqual(seconds(yield* ReliabilityConfig.timeoutOr("gemini_api", "3 seconds")), 1)
      assert.strictEqual((yield* ReliabilityConfig.policy("unknown-name")).maxAttempts, 3)
    }).pipe(Effect.provide(ReliabilityConfig.layerWith({
      timeouts: { gemini_api: "1 second" },
      policies: { gemini: { maxAttempts: 4 } }
    }))))

  it.effect("layerWith reads plain numbers as seconds, like the environment, and rejects bad values", () =>
    Effect.gen(function*() {
      const config = yield* ReliabilityConfig.make({
        timeouts: { gemini_api: 30, db_query: "1500 millis" },
        policies: { gemini: { initialDelay: 0.5, maxDelay: "10s" } },
        budget: { window: 20 }
      })
      assert.strictEqual(seconds(config.timeoutOf("gemini_api")), 30)
      assert.strictEqual(seconds(config.timeoutOf("db_query")), 1.5)
      assert.strictEqual(seconds(config.policyOf("gemini").initialDelay), 0.5)
      assert.strictEqual(seconds(config.policyOf("gemini").maxDelay), 10)
      assert.strictEqual(seconds(config.budget.window), 20)
      const error = yield* Effect.flip(ReliabilityConfig.make({ timeouts: { gemini_api: -1 } }))
      assert.include(error.message, "BIG3_TIMEOUT_GEMINI_API=-1")
      assert.include(error.message, "overrides")
    }))

  it.effect("layerWith validates every override as the environment does (maxAttempts 0, factor -3)", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(ReliabilityConfig.layerWith({
        policies: { gemini: { maxAttempts: 0, factor: -3 } }
      })).pipe(Effect.scoped))
      assert.strictEqual(error._op, "InvalidData")
      assert.strictEqual(
        error.message,
        `BIG3_RETRY_GEMINI_MAX_ATTEMPTS=0 (from the overrides given to layerWith) is not valid: ` +
          `expected a whole number of attempts from 1 to 1000`
      )
      const factor = yield* Effect.flip(ReliabilityConfig.make({ policies: { gemini: { factor: -3 } } }))
      assert.include(factor.message, "BIG3_RETRY_GEMINI_FACTOR=-3")
      const ratio = yield* Effect.flip(ReliabilityConfig.make({ breakers: { anthropic: { failureRatio: 2 } } }))
      assert.include(ratio.message, "BIG3_BREAKER_ANTHROPIC_FAILURE_RATIO=2")
      const budget = yield* Effect.flip(ReliabilityConfig.make({ budget: { minRetries: -1 } }))
      assert.include(budget.message, "BIG3_BUDGET_MIN_RETRIES=-1")
      const zero = yield* Effect.flip(ReliabilityConfig.make({ policies: { custom: { initialDelay: Duration.zero } } }))
      assert.include(zero.message, "BIG3_RETRY_CUSTOM_INITIAL_DELAY")
      assert.include(zero.message, "zero")
    }))

  it.effect("layerWith names an unknown field or operation id with a hint, and shows overrides as their source", () =>
    Effect.gen(function*() {
      // A caller without the types (plain JavaScript, parsed JSON) can name anything.
      const timeouts: Record<string, number> = { gemini_apii: 5 }
      const error = yield* Effect.flip(ReliabilityConfig.make({ timeouts }))
      assert.include(error.message, `unknown operation id "timeouts.gemini_apii" (did you mean "gemini_api"?)`)
      const config = yield* ReliabilityConfig.make({
        timeouts: { gemini_api: 30 },
        policies: { custom: { maxAttempts: 7 } }
      })
      assert.strictEqual(config.policyOf("custom").maxAttempts, 7)
      assert.strictEqual(Duration.toMillis(config.policyOf("custom").initialDelay), 1000)
      const sourceOf = (key: string) => config.entries.find((entry) => entry.key === key)?.source
      assert.strictEqual(sourceOf("BIG3_TIMEOUT_GEMINI_API"), "override")
      assert.strictEqual(sourceOf("BIG3_RETRY_CUSTOM_MAX_ATTEMPTS"), "override")
      assert.strictEqual(sourceOf("BIG3_RETRY_GEMINI_MAX_ATTEMPTS"), "default")
    }))
})
