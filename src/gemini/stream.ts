/**
 * A streamed call under the protection pipeline: the part before the first element (sending,
 * the status, the first chunk) is one protected attempt, retried as any call is; once an element
 * has arrived nothing is retried (the caller has seen part of the answer), and a gap between
 * elements longer than the idle bound ends the stream with its timeout.
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"

/** The first non-empty chunk of `pull`, or `None` when the stream ends without any element. */
const firstChunk = <A, E>(pull: Effect.Effect<Chunk.Chunk<A>, Option.Option<E>>): Effect.Effect<Option.Option<Chunk.Chunk<A>>, E> =>
  Effect.matchEffect(pull, {
    onFailure: Option.match({ onNone: () => Effect.succeed(Option.none()), onSome: Effect.fail }),
    onSuccess: (chunk) => Chunk.isEmpty(chunk) ? firstChunk(pull) : Effect.succeed(Option.some(chunk))
  })

/**
 * Runs `open` (a fresh stream per attempt) and its first chunk inside `protect`; then the rest of
 * that stream, each pull bounded by `idle`. Each attempt's stream lives in its own scope: closed
 * when the attempt fails (or times out), else when the returned stream ends or is interrupted,
 * which aborts the underlying request.
 */
export const protectFirstChunk = <A, E, EP, EI>(options: {
  readonly open: Effect.Effect<Stream.Stream<A, E>, E>
  readonly protect: <X, Y>(self: Effect.Effect<X, Y>) => Effect.Effect<X, Y | EP>
  readonly idle: <X, Y>(self: Effect.Effect<X, Y>) => Effect.Effect<X, Y | EI>
}): Stream.Stream<A, E | EP | EI> =>
  Stream.unwrapScoped(
    Effect.gen(function*() {
      const attempt = Effect.gen(function*() {
        const scope = yield* Scope.make()
        return yield* Effect.gen(function*() {
          const pull = yield* Scope.extend(Stream.toPull(yield* options.open), scope)
          const first = yield* firstChunk(pull)
          return { scope, pull, first }
        }).pipe(Effect.onExit((exit) => Exit.isFailure(exit) ? Scope.close(scope, exit) : Effect.void))
      })
      const opened = yield* options.protect(attempt)
      yield* Effect.addFinalizer((exit) => Scope.close(opened.scope, exit))
      const next: Effect.Effect<Chunk.Chunk<A>, Option.Option<E | EI>> = options.idle(opened.pull).pipe(
        Effect.mapError((error): Option.Option<E | EI> => Option.isOption(error) ? error : Option.some(error))
      )
      return Option.match(opened.first, {
        onNone: () => Stream.empty,
        onSome: (first) => Stream.concat(Stream.fromChunk(first), Stream.repeatEffectChunkOption(next))
      })
    })
  )
