/**
 * `big3 config`: every timeout, retry policy, breaker and budget setting with its source.
 *
 * @internal
 */
import * as Command from "@effect/cli/Command"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as ReliabilityConfig from "../ReliabilityConfig.js"
import { jsonOption, metricsOption, table, withMetrics } from "./shared.js"

const kindTitle: Record<ReliabilityConfig.Entry["kind"], string> = {
  bounds: "Timeout bounds",
  timeout: "Timeouts",
  retry: "Retry policies",
  breaker: "Circuit breakers",
  budget: "Retry budget",
  adaptive: "Adaptive timeouts and pacing"
}

/** The table `big3 config` prints, grouped by kind. */
export const renderConfig = (config: ReliabilityConfig.Settings): string => {
  const sections: Array<string> = []
  if (config.configFile !== undefined) sections.push(`config file: ${config.configFile}`)
  for (const kind of ["timeout", "bounds", "retry", "breaker", "budget"] as const) {
    const entries = config.entries.filter((entry) => entry.kind === kind)
    const rows = entries.map((entry) => [entry.group, entry.name, entry.value, entry.source, entry.key])
    sections.push(`${kindTitle[kind]}\n${table([["GROUP", "NAME", "VALUE", "SOURCE", "ENV"], ...rows])}`)
  }
  return sections.join("\n\n")
}

export const configCommand = Command.make(
  "config",
  { json: jsonOption, metrics: metricsOption },
  ({ json, metrics }) =>
    withMetrics(
      metrics,
      Effect.gen(function*() {
        const config = yield* ReliabilityConfig.load
        if (json) {
          const entries = config.entries.map(({ group, key, kind, name, raw, source, value }) => ({
            key,
            kind,
            group,
            name,
            value: raw,
            display: value,
            source
          }))
          yield* Console.log(JSON.stringify({ configFile: config.configFile ?? null, entries }, null, 2))
        } else {
          yield* Console.log(renderConfig(config))
        }
      })
    )
).pipe(Command.withDescription("print every timeout, retry policy, breaker and budget setting with its source"))
