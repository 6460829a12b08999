/**
 * What a runner leaves in its state directory:
 *
 * - `runner.json` (file mode 0600): where its API listens and the random token a caller must
 *   send, so only users who can read the state directory can drive it. Written once the API
 *   listens, removed when the runner stops (a killed runner leaves it behind: the CLI then finds
 *   no one answering there and says so);
 * - `runner.lock`: a SQLite database the runner holds an exclusive lock on while it runs, so a
 *   second runner on the same state directory refuses to start. The operating system drops the
 *   lock when the process dies, even by SIGKILL.
 *
 * @internal
 */
import * as Reactivity from "@effect/experimental/Reactivity"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { nonRetryableField } from "../Errors.js"
import { messageOf } from "../internal/messageOf.js"

/** The file the CLI reads to find the runner. */
export const fileName = "runner.json"

/** The lock a runner holds on its state directory. */
export const lockName = "runner.lock"

/** A runner's own failures: its state directory is taken, or its files cannot be written or read. */
export class RunnerError extends Schema.TaggedError<RunnerError>()("RunnerError", {
  service: Schema.String,
  message: Schema.String,
  retryable: nonRetryableField
}) {}

/** The content of `runner.json`. */
export const Contents = Schema.Struct({
  version: Schema.Literal(1),
  pid: Schema.Number,
  /** The API's base URL, `http://127.0.0.1:<port>`. */
  url: Schema.String,
  /** Sent as `Authorization: Bearer <token>`. */
  token: Schema.Redacted(Schema.String),
  /** The runner's cluster address, when it talks to other runners. */
  runner: Schema.optional(Schema.String),
  store: Schema.String,
  startedAt: Schema.Number
})
export type Contents = typeof Contents.Type


const failure = (what: string) => (cause: unknown) =>
  new RunnerError({ service: "runner", message: `${what}: ${messageOf(cause)}` })

/** A new random token (256 bits). */
export const newToken = (): Redacted.Redacted => Redacted.make(crypto.randomBytes(32).toString("base64url"))

/** Whether `given` is the token (compared in constant time). */
export const tokenMatches = (token: Redacted.Redacted, given: string): boolean => {
  const expected = Buffer.from(Redacted.value(token))
  const actual = Buffer.from(given)
  return expected.length === actual.length && crypto.timingSafeEqual(expected, actual)
}

const encode = Schema.encodeSync(Schema.parseJson(Contents))
const decode = Schema.decodeUnknown(Schema.parseJson(Contents))

/**
 * Writes `runner.json` (temp file created 0600, then renamed) and removes it when the scope
 * closes, unless another runner has replaced it meanwhile.
 */
export const publish = (
  stateDir: string,
  contents: Contents
): Effect.Effect<string, RunnerError, Scope.Scope> => {
  const file = path.join(stateDir, fileName)
  const write = Effect.try({
    try: () => {
      fs.mkdirSync(stateDir, { recursive: true })
      const temp = `${file}.${process.pid}.tmp`
      fs.writeFileSync(temp, encode(contents), { mode: 0o600, flag: "w" })
      fs.chmodSync(temp, 0o600)
      fs.renameSync(temp, file)
      return file
    },
    catch: failure(`could not write ${file}`)
  })
  const removeIfOurs = Effect.flatMap(Effect.option(read(stateDir)), (current) =>
    Effect.sync(() => {
      const ours = Option.exists(Option.flatten(current), (found) =>
        Redacted.value(found.token) === Redacted.value(contents.token))
      if (ours) fs.rmSync(file, { force: true })
    }))
  return Effect.acquireRelease(write, () => removeIfOurs)
}

/** `runner.json` of a state directory: `None` when there is none. A file that does not decode fails. */
export const read = (stateDir: string): Effect.Effect<Option.Option<Contents>, RunnerError> => {
  const file = path.join(stateDir, fileName)
  return Effect.try({
    try: () => fs.existsSync(file) ? Option.some(fs.readFileSync(file, "utf8")) : Option.none<string>(),
    catch: failure(`could not read ${file}`)
  }).pipe(
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeed(Option.none<Contents>()),
      onSome: (text) =>
        Effect.asSome(decode(text)).pipe(
          Effect.mapError(() => new RunnerError({ service: "runner", message: `${file} is not a runner file; remove it` }))
        )
    }))
  )
}

/**
 * Holds the state directory's runner lock for the scope; fails at once when another runner holds
 * it.
 */
export const lock = (stateDir: string): Effect.Effect<void, RunnerError, Scope.Scope> => {
  const file = path.join(stateDir, lockName)
  return Effect.gen(function*() {
    yield* Effect.try({ try: () => fs.mkdirSync(stateDir, { recursive: true }), catch: failure(`could not create ${stateDir}`) })
    const client = yield* SqliteClient.make({ filename: file, disableWAL: true }).pipe(
      Effect.catchAllDefect((cause) => Effect.fail(failure(`could not open ${file}`)(cause))),
      Effect.mapError(failure(`could not open ${file}`)),
      Effect.provide(Reactivity.layer)
    )
    yield* client`PRAGMA busy_timeout = 0`.raw.pipe(Effect.mapError(failure(`could not open ${file}`)))
    yield* client`PRAGMA locking_mode = EXCLUSIVE`.raw.pipe(Effect.mapError(failure(`could not open ${file}`)))
    // Never committed: the lock lasts as long as the connection, which closes with the scope.
    yield* client.unsafe("BEGIN EXCLUSIVE").raw.pipe(
      Effect.mapError(() =>
        new RunnerError({
          service: "runner",
          message: `another runner is serving ${stateDir} (it holds ${file}); stop it, or give this one its own ` +
            `BIG3_STATE_DIR (runners share agents through BIG3_DATABASE_URL, not a state directory)`
        })
      )
    )
  })
}
