/**
 * `big3 config`: every timeout, retry policy, breaker and budget setting with its source.
 *
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as ReliabilityConfig from "../ReliabilityConfig.js"
import type { LearnedView } from "./config-adaptive.js"
import { jsonOption, loadModule, metricsOption, table, withMetrics } from "./shared.js"

const loadAdaptive = loadModule("config", () => import("./config-adaptive.js"))

const kindTitle: Record<ReliabilityConfig.Entry["kind"], string> = {
  bounds: "Timeout bounds",
  timeout: "Timeouts",
  retry: "Retry policies",
  breaker: "Circuit breakers",
  budget: "Retry budget",
  adaptive: "Adaptive timeouts and pacing"
}

/**
 * The table `big3 config` prints, grouped by kind. With adaptive operations, a section lists
 * each beside its configured timeout: `gemini_api  45s  default  adaptive: learned 1.2s from 812 samples`.
 */
export const renderConfig = (
  config: ReliabilityConfig.Settings,
  describeAdaptive?: (operation: string) => string
): string => {
  const sections: Array<string> = []
  if (config.configFile !== undefined) sections.push(`config file: ${config.configFile}`)
  for (const kind of ["timeout", "bounds", "retry", "breaker", "budget", "adaptive"] as const) {
    const entries = config.entries.filter((entry) => entry.kind === kind)
    const rows = entries.map((entry) => [entry.group, entry.name, entry.value, entry.source, entry.key])
    sections.push(`${kindTitle[kind]}\n${table([["GROUP", "NAME", "VALUE", "SOURCE", "ENV"], ...rows])}`)
  }
  if (describeAdaptive !== undefined) {
    const rows = config.entries
      .filter((entry) => entry.kind === "timeout" && config.adaptive.operations.has(entry.name))
      .map((entry) => [entry.name, entry.value, entry.source, describeAdaptive(entry.name)])
    sections.push(`Adaptive timeouts (configured timeout, its source, what is learned)\n${table(rows)}`)
  }
  return sections.join("\n\n")
}

/** `{ enabled, learned?, samples }` of a timeout entry for `--json` (learned in seconds). */
const adaptiveJson = (config: ReliabilityConfig.Settings, view: LearnedView | undefined, operation: string) => {
  const enabled = config.adaptive.operations.has(operation)
  if (!enabled || view === undefined) return { enabled, samples: 0 }
  if (view._tag === "Unreadable") return { enabled, samples: null, error: view.reason }
  const learned = view.byOperation.get(operation)
  return learned?.learned === undefined
    ? { enabled, samples: learned?.samples ?? 0 }
    : { enabled, learned: Duration.toMillis(learned.learned) / 1000, samples: learned.samples }
}

export const configCommand = Command.make(
  "config",
  { json: jsonOption, metrics: metricsOption },
  ({ json, metrics }) =>
    withMetrics(
      metrics,
      Effect.gen(function*() {
        const config = yield* ReliabilityConfig.load
        const adaptive = config.adaptive.operations.size === 0 ? undefined : yield* loadAdaptive
        const view = adaptive === undefined ? undefined : yield* adaptive.readLearned(config)
        if (view?._tag === "Unreadable") {
          yield* Console.error(`big3 config: cannot read the learned timeouts: ${view.reason}`)
        }
        if (json) {
          const entries = config.entries.map(({ group, key, kind, name, raw, source, value }) => ({
            key,
            kind,
            group,
            name,
            value: raw,
            display: value,
            source,
            ...(kind === "timeout" ? { adaptive: adaptiveJson(config, view, name) } : {})
          }))
          yield* Console.log(JSON.stringify({ configFile: config.configFile ?? null, entries }, null, 2))
        } else {
          yield* Console.log(renderConfig(
            config,
            adaptive === undefined || view === undefined
              ? undefined
              : (operation) => adaptive.describeLearned(view, operation, config.adaptive.minSamples)
          ))
        }
      })
    )
).pipe(Command.withDescription("print every timeout, retry policy, breaker and budget setting with its source"))
