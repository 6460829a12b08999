/** Reading configuration in tests: a `Config` against a map of variables, and the message it fails with. */
import * as Cause from "effect/Cause"
import type * as Config from "effect/Config"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"

/** `config` read from `env` (`_` as the path delimiter, as the environment provider uses it), as an `Exit`. */
export const readConfig = <A>(config: Config.Config<A>, env: Record<string, string>) =>
  Effect.exit(Effect.withConfigProvider(config, ConfigProvider.fromMap(new Map(Object.entries(env)), { pathDelim: "_" })))

/** The ConfigError's message: a failure, not a defect (a defect would fail this with its cause). */
export const failureMessage = <A, E extends { readonly message: string }>(exit: Exit.Exit<A, E>): string => {
  if (Exit.isSuccess(exit)) throw new Error("expected a ConfigError, the load succeeded")
  const failure = Cause.failureOption(exit.cause)
  if (failure._tag === "None") throw new Error(`expected a ConfigError, got ${Cause.pretty(exit.cause)}`)
  return failure.value.message
}
