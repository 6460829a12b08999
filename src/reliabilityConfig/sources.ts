/**
 * Where settings come from, each turned into the same flat form (env-style keys to raw values):
 * the environment (through the current `ConfigProvider`), the JSON file named by `BIG3_CONFIG`,
 * and the plain overrides given to `layerWith`. The file and the overrides share one reader of
 * nested sections, with "did you mean" hints for unknown keys.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HashSet from "effect/HashSet"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import { pathSetting } from "../internal/pathSetting.js"
import { groupDigits, preview, truncate } from "../internal/preview.js"
import { readRegularFile } from "../internal/regularFile.js"
import type { Raw, Scalar, Source } from "./decode.js"
import { defaultBreakers, defaultPolicies, defaultTimeouts, isOperationId } from "./defaults.js"
import type { Field, Fields } from "./fields.js"
import { messageOf } from "../internal/messageOf.js"
import {
  adaptiveFields,
  adaptiveKey,
  adaptiveRateKey,
  boundFields,
  boundKey,
  breakerFields,
  breakerKey,
  budgetFields,
  budgetKey,
  fieldsOf,
  knownKeys,
  retryFields,
  retryKey,
  timeoutKey
} from "./fields.js"

/** Raw values by env-style key, and the policy and breaker names they mention. */
export interface Flat {
  readonly values: ReadonlyMap<string, Raw>
  readonly policies: ReadonlySet<string>
  readonly breakers: ReadonlySet<string>
}

export const emptyFlat: Flat = { values: new Map(), policies: new Set(), breakers: new Set() }

// ---------------------------------------------------------------------------------------------
// Did you mean
// ---------------------------------------------------------------------------------------------

const editDistance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = current
    }
  }
  return row[b.length]!
}

const suggest = (name: string, candidates: Iterable<string>): string => {
  // A name far longer than any candidate has no near miss; comparing it would cost its length.
  if (name.length > 64) return ""
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of candidates) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3))
    ? ` (did you mean "${best}"?)`
    : ""
}

// ---------------------------------------------------------------------------------------------
// Nested sections: the file and the overrides
// ---------------------------------------------------------------------------------------------

/** camelCase or snake_case → UPPER_SNAKE. */
const upperSnake = (name: string): string => name.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toUpperCase()

const isScalar = (u: unknown): u is Scalar => typeof u === "string" || typeof u === "number" || typeof u === "boolean"

/** How many problems a message describes before it only counts the rest. */
const maxProblems = 10

interface NestedOptions {
  readonly source: Source
  /** Overrides may name new policies and breakers (they start from the `default` ones); the file may not. */
  readonly newNames: boolean
  readonly fail: (message: string) => ConfigError.ConfigError
}

/**
 * Reads nested sections into env-style keys, collecting every problem:
 *
 * ```json
 * { "timeouts": { "gemini_api": 30, "agent_creation": "2 minutes" },
 *   "timeoutBounds": { "min": 0.1, "max": 600 },
 *   "retry": { "gemini": { "maxAttempts": 4, "jitter": "none" } },
 *   "breakers": { "gemini": { "failureThreshold": 5, "openDuration": 60 } },
 *   "budget": { "ratio": 0.2, "window": 10, "minRetries": 3 } }
 * ```
 *
 * Field names may be camelCase or snake_case; top-level operation ids and `BIG3_*` keys are
 * accepted too. Anything else is an error that names the key.
 */
const flattenNested = (json: unknown, options: NestedOptions): Effect.Effect<Flat, ConfigError.ConfigError> =>
  Effect.suspend(() => {
    const values = new Map<string, Raw>()
    const policies = new Set<string>()
    const breakers = new Set<string>()
    // The first problems are described (a message is built only for them); the rest are counted:
    // 300,000 unknown keys make one short message, not 300,000 suggestions.
    const problems: Array<string> = []
    let moreProblems = 0
    const problem = (describe: () => string): void => {
      if (problems.length < maxProblems) problems.push(describe())
      else moreProblems++
    }
    const put = (path: string, key: string, value: unknown) => {
      if (isScalar(value) || Duration.isDuration(value)) values.set(key, { value, source: options.source })
      else problem(() => `"${truncate(path)}" must be a number or a string, got ${preview(value)}`)
    }
    const section = (path: string, value: unknown, each: (name: string, inner: unknown, innerPath: string) => void) => {
      if (!Predicate.isRecord(value)) {
        problem(() => `"${truncate(path)}" must be an object, got ${preview(value)}`)
        return
      }
      for (const [name, inner] of Object.entries(value)) {
        if (inner !== undefined) each(name, inner, `${path}.${name}`)
      }
    }
    const fields = <S>(path: string, value: unknown, table: Fields<S>, keyOf: (field: Field<unknown>) => string) => {
      const known = fieldsOf(table)
      section(path, value, (name, inner, innerPath) => {
        const found = known.find((candidate) => candidate.env === upperSnake(name))
        if (found === undefined) {
          const names = known.map((candidate) => candidate.name)
          problem(() => `unknown key "${truncate(innerPath)}"${suggest(name, names)}; expected one of ${names.join(", ")}`)
        } else put(innerPath, keyOf(found), inner)
      })
    }
    const named = (
      path: string,
      value: unknown,
      builtIn: ReadonlyArray<string>,
      seen: Set<string>,
      each: (name: string, inner: unknown, innerPath: string) => void
    ) =>
      section(path, value, (name, inner, innerPath) => {
        if (builtIn.includes(name) || (options.newNames && /^[A-Za-z0-9_-]+$/.test(name))) {
          seen.add(name)
          each(name, inner, innerPath)
        } else {
          problem(() => `unknown name "${truncate(innerPath)}"${suggest(name, builtIn)}; expected one of ${builtIn.join(", ")}`)
        }
      })
    const timeoutEntry = (name: string, inner: unknown, path: string) => {
      if (isOperationId(name)) put(path, timeoutKey(name), inner)
      else problem(() => `unknown operation id "${truncate(path)}"${suggest(name, defaultTimeouts.keys())}`)
    }

    if (!Predicate.isRecord(json)) {
      return Effect.fail(options.fail(`expected a JSON object at the top level, got ${preview(json)}`))
    }
    for (const [key, value] of Object.entries(json)) {
      if (value === undefined) continue
      switch (key) {
        case "$schema":
          break
        case "timeouts":
          section("timeouts", value, timeoutEntry)
          break
        case "timeoutBounds":
        case "timeout_bounds":
          fields(key, value, boundFields, boundKey)
          break
        case "retry":
        case "retries":
        case "policies":
          named(key, value, Object.keys(defaultPolicies), policies, (name, inner, path) =>
            fields(path, inner, retryFields, (field) => retryKey(name, field.env)))
          break
        case "breakers":
          named(key, value, Object.keys(defaultBreakers), breakers, (name, inner, path) =>
            fields(path, inner, breakerFields, (field) => breakerKey(name, field.env)))
          break
        case "adaptive":
          section(key, value, (name, inner, path) => {
            const tuning = fieldsOf(adaptiveFields).find((candidate) => candidate.env === upperSnake(name))
            if (tuning !== undefined) put(path, adaptiveKey(tuning.env), inner)
            else if (isOperationId(name)) put(path, adaptiveKey(name), inner)
            else if (name === "rate") {
              section(path, inner, (service, on, servicePath) => {
                if (/^[A-Za-z0-9_-]+$/.test(service)) put(servicePath, adaptiveRateKey(service), on)
                else problem(() => `"${truncate(servicePath)}" is not a service name`)
              })
            } else {
              const names = [...fieldsOf(adaptiveFields).map((candidate) => candidate.name), "rate"]
              problem(() =>
                `unknown key "${truncate(path)}"${suggest(name, [...names, ...defaultTimeouts.keys()])}; ` +
                `expected one of ${names.join(", ")} or an operation id`
              )
            }
          })
          break
        case "budget":
        case "retryBudget":
        case "retry_budget":
          fields(key, value, budgetFields, (field) => budgetKey(field.env))
          break
        default:
          if (isOperationId(key)) put(key, timeoutKey(key), value)
          else if (knownKeys.has(key)) put(key, key, value)
          else {
            problem(() =>
              `unknown key "${truncate(key)}"${
                suggest(key, [...defaultTimeouts.keys(), "timeouts", "retry", "breakers", "budget", "timeoutBounds", "adaptive"])
              }; expected timeouts, timeoutBounds, retry, breakers, budget, adaptive, an operation id or a BIG3_* name`
            )
          }
      }
    }
    if (moreProblems > 0) problems.push(`and ${groupDigits(moreProblems)} more problems`)
    return problems.length === 0
      ? Effect.succeed({ values, policies, breakers })
      : Effect.fail(options.fail(problems.join("; ")))
  })

const fileError = (file: string, message: string): ConfigError.ConfigError =>
  ConfigError.InvalidData(["BIG3_CONFIG"], `BIG3_CONFIG=${truncate(file, 200)}: ${message}`)

/** The config file's content, flattened; unknown keys are errors. */
export const flattenConfigFile = (file: string, json: unknown): Effect.Effect<Flat, ConfigError.ConfigError> =>
  flattenNested(json, { source: "file", newNames: false, fail: (message) => fileError(file, message) })

/** The overrides given to `layerWith`, flattened like the file; policies and breakers may be new. */
export const flattenOverrides = (overrides: object): Effect.Effect<Flat, ConfigError.ConfigError> =>
  flattenNested(overrides, {
    source: "override",
    newNames: true,
    fail: (message) => ConfigError.InvalidData([], `the overrides given to layerWith: ${message}`)
  })

/**
 * The largest config file read: the whole configuration is a few kilobytes, and a bound keeps a
 * hostile or mistaken file (a log, a device) from costing memory and time.
 */
export const maxConfigFileBytes = 1_048_576

/**
 * V8's words for a JSON syntax error, without the excerpt of the file it quotes
 * (`Unexpected token 'A', ..."key": AIza"... is not valid JSON`): a config file may hold a secret.
 */
const jsonErrorOf = (cause: unknown): string => messageOf(cause).replace(/,\s*(\.\.\.)?".*$/s, "")

/** Reads and flattens the JSON file at `file`: a regular file of at most `maxConfigFileBytes`. */
export const readConfigFile = (file: string): Effect.Effect<Flat, ConfigError.ConfigError> =>
  readRegularFile(file, maxConfigFileBytes).pipe(
    Effect.mapError((refused) => fileError(file, refused.detail)),
    Effect.flatMap((text) =>
      Effect.try({
        try: (): unknown => JSON.parse(text),
        catch: (cause) =>
          fileError(file, `the file is not valid JSON (${truncate(jsonErrorOf(cause))})`)
      })
    ),
    Effect.flatMap((json) => flattenConfigFile(file, json))
  )

// ---------------------------------------------------------------------------------------------
// The environment
// ---------------------------------------------------------------------------------------------

/** Every known key set in the current `ConfigProvider`. */
export const readEnvironment: Effect.Effect<Flat, ConfigError.ConfigError> = Effect.gen(function*() {
  const values = new Map<string, Raw>()
  for (const key of knownKeys) {
    const value = yield* Config.option(Config.string(key))
    if (Option.isSome(value)) values.set(key, { value: value.value, source: "env" })
  }
  return { ...emptyFlat, values }
})

/** The families of the keys read above: a variable under one of them that is not a known key is a typo. */
const families = ["TIMEOUT", "RETRY", "BREAKER", "BUDGET", "ADAPTIVE"] as const

/** How many unknown variables are named at most: a few typos are what this is for. */
const maxUnknown = 20

/**
 * The variables set under `BIG3_TIMEOUT_`, `BIG3_RETRY_`, `BIG3_BREAKER_`, `BIG3_BUDGET_` and
 * `BIG3_ADAPTIVE_` in the current `ConfigProvider` that big3 does not read, each with a "did you
 * mean": a typo there would otherwise be ignored without a word, while the file refuses one.
 */
export const unknownEnvironmentKeys: Effect.Effect<
  ReadonlyArray<{ readonly key: string; readonly hint: string }>
> = Effect.configProviderWith((provider) => {
  const found: Array<{ readonly key: string; readonly hint: string }> = []
  const walk = (path: ReadonlyArray<string>): Effect.Effect<void, ConfigError.ConfigError> =>
    Effect.flatMap(provider.flattened.enumerateChildren(path), (children) => {
      if (HashSet.size(children) === 0) {
        // A family with nothing under it is not a variable.
        if (path.length <= 2) return Effect.void
        const key = path.join("_")
        if (!knownKeys.has(key) && found.length < maxUnknown) found.push({ key, hint: suggest(key, knownKeys) })
        return Effect.void
      }
      return Effect.forEach(children, (child) => found.length < maxUnknown ? walk([...path, child]) : Effect.void, { discard: true })
    })
  // One listing of BIG3_ first: most environments set none of these families, and each listing
  // reads every variable.
  return Effect.flatMap(
    provider.flattened.enumerateChildren(["BIG3"]),
    (present) =>
      Effect.forEach(families, (family) => HashSet.has(present, family) ? walk(["BIG3", family]) : Effect.void, {
        discard: true
      })
  ).pipe(
    // A provider that cannot list its keys has no typo to report.
    Effect.orElseSucceed(() => undefined),
    Effect.as(found)
  )
})

/** `BIG3_CONFIG`, when set and not blank, read as every path setting is (`internal/pathSetting`). */
export const configFileName: Effect.Effect<string | undefined, ConfigError.ConfigError> = Effect.map(
  pathSetting("BIG3_CONFIG"),
  Option.getOrUndefined
)

/** `high` over `low`, key by key. */
export const layered = (low: Flat, high: Flat): Flat => ({
  values: new Map([...low.values, ...high.values]),
  policies: new Set([...low.policies, ...high.policies]),
  breakers: new Set([...low.breakers, ...high.breakers])
})
