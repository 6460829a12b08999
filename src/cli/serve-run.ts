/**
 * The body of `big3 serve`: a runner (`Runner.layer`) on the runtime's foundation, the
 * observability client and the agent backend `BIG3_AGENT_BACKEND` names. Failures print as
 * `big3 serve: <Tag>: <message>` and exit 1; configuration errors go up unchanged (exit 78).
 *
 * @internal
 */
import type { ServeError } from "@effect/platform/HttpServerError"
import * as ConfigError from "effect/ConfigError"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import { messageOf } from "../internal/messageOf.js"
import * as Runner from "../Runner.js"
import * as Runtime from "../Runtime.js"
import * as Store from "../Store.js"
import { backend } from "./agents-run.js"
import { type CliExit, failCommand } from "./shared.js"

/** What the runner stands on. */
const foundation = Layer.provideMerge(backend, Runtime.observabilityWith())

export const serve = (options: Runner.Options): Effect.Effect<never, CliExit | ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const location = yield* Store.locationConfig
    const stateDir = yield* Store.stateDir
    yield* Console.error(`big3 serve: state in ${stateDir}, store: ${Store.describeLocation(location)}`)
    if (location._tag === "Sqlite" && options.runnerPort !== undefined) {
      yield* Console.error("big3 serve: --runner-port is ignored: an embedded runner (no BIG3_DATABASE_URL) talks to no other runner")
    }
    return yield* Runner.serve(options).pipe(Effect.provide(foundation))
  }).pipe(
    // A ServeError's own message is empty: the reason (EADDRINUSE, EACCES) is in its cause.
    Effect.catchIf(
      (error): error is ServeError => Predicate.isTagged(error, "ServeError"),
      (error) => failCommand("serve")(`cannot listen: ${messageOf(error.cause)}`)
    ),
    Effect.catchAll(failCommand("serve"))
  )
