/**
 * Where agents live on disk, and the one place that reads, writes or removes there.
 *
 * The registry records each agent's directory and the agents root it was created under, both
 * canonical when the agent was created (resolved by `realPath`: no symbolic link in them). Every
 * access first checks that the directory is `<root>/<name>` and still resolves to itself, so an
 * agent directory (or a directory above it) replaced by a symbolic link is refused with
 * `UnsafeAgentPath`, never followed. Operator files are written to a new temp file, created
 * exclusively (so never through a link planted at its name), then renamed over the old file; they
 * are read with `O_NOFOLLOW`, so an operator file replaced by a link to a secret is refused, not
 * printed. An operator file with more than one hard link is another file too (a link to a secret
 * elsewhere on the file system is indistinguishable from it), so it is neither read nor replaced;
 * nor is one that became a symbolic link. big3's own files never have a second link: each write
 * is a new file renamed into place.
 *
 * Known limit: the check and the access after it are two system calls, and Node has no `openat`;
 * a directory swapped for a link in that instant is not caught.
 *
 * @internal
 */
import type { PlatformError } from "@effect/platform/Error"
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as nodeFs from "node:fs"
import * as nodePath from "node:path"
import { NotFound } from "../Errors.js"
import { pathSetting } from "../internal/pathSetting.js"
import * as Store from "../Store.js"
import type { AgentName } from "./Domain.js"
import { AgentStorageError, UnsafeAgentPath } from "./Domain.js"
import * as OperatorFile from "./OperatorFile.js"

/**
 * `BIG3_AGENTS_DIR`, else `{BIG3_STATE_DIR}/agents` (`BIG3_STATE_DIR` defaults to `.big3`). Both
 * are read the one way every path setting is (`internal/pathSetting`): blank is unset. This is
 * where new agents go; an existing agent stays where the registry recorded it.
 */
export const agentsDirConfig: Config.Config<string> = Config.all([pathSetting("BIG3_AGENTS_DIR"), Store.stateDir]).pipe(
  Config.map(([agentsDir, stateDir]) => Option.getOrElse(agentsDir, () => nodePath.join(stateDir, "agents")))
)

/** Where an agent lives. */
export interface Location {
  readonly agent: AgentName
  /** The agents root the agent was created under (canonical at creation). */
  readonly root: string
  /** `<root>/<agent>`: the agent's working directory, holding its operator files. */
  readonly directory: string
  /**
   * False for an agent registered by an older big3, which did not record where it lives: `root`
   * is then the current settings' agents root, and `delete` removes no directory for it.
   */
  readonly recorded: boolean
}

/** What the registry records of a location. */
export interface Recorded {
  readonly root: string
  readonly directory: string
}

/** The largest operator file `readFile` reads (ours stay far below: progress is capped). */
export const maxReadBytes = 32 * 1024 * 1024

// Read-only, never through a link, and never blocking on a FIFO planted under the name.
const readFlags = nodeFs.constants.O_RDONLY | (nodeFs.constants.O_NOFOLLOW ?? 0) | (nodeFs.constants.O_NONBLOCK ?? 0)

const codeOf = (cause: unknown): string | undefined =>
  Predicate.hasProperty(cause, "code") && typeof cause.code === "string" ? cause.code : undefined

const messageOf = (cause: unknown): string =>
  Predicate.hasProperty(cause, "message") && typeof cause.message === "string" ? cause.message : String(cause)

/** Why an operator file with `links` hard links is refused. */
const hardLinked = (file: string, links: number, refused: "read" | "written"): string =>
  `${file} has ${links} hard links: the same file has another name, perhaps outside the agent's directory, and ` +
  `big3 writes its operator files with one link only, so it was not ${refused}`

/** The disk side of the Agents service, over `FileSystem` and `Path`. */
export const make = (fs: FileSystem.FileSystem, path: Path.Path) => {
  const storageError = (agent: string, what: string) => (error: PlatformError) =>
    new AgentStorageError({ service: "agents", agent, message: `could not ${what}: ${error.message}` })

  const refuse = (location: Location, refused: string, message: string) =>
    new UnsafeAgentPath({ service: "agents", agent: location.agent, path: refused, message })

  /** Creates the agents root when missing; its canonical path is what new agents record. */
  const prepareRoot = (agent: string, root: string): Effect.Effect<string, AgentStorageError> =>
    fs.makeDirectory(root, { recursive: true }).pipe(
      Effect.zipRight(fs.realPath(root)),
      Effect.mapError(storageError(agent, `create the agents directory ${root}`))
    )

  /** The location of a new agent under a canonical root. */
  const locationIn = (root: string, agent: AgentName): Location => ({
    agent,
    root,
    directory: path.join(root, agent),
    recorded: true
  })

  /** Where a registered agent lives: as recorded, or for an older entry, under `currentRoot`. */
  const locate = (agent: AgentName, recorded: Option.Option<Recorded>, currentRoot: string): Effect.Effect<Location> =>
    Option.match(recorded, {
      onSome: ({ directory, root }) => Effect.succeed({ agent, root, directory, recorded: true }),
      onNone: () =>
        fs.realPath(currentRoot).pipe(
          Effect.orElseSucceed(() => currentRoot),
          Effect.map((root) => ({ agent, root, directory: path.join(root, agent), recorded: false }))
        )
    })

  /** The directory's real path, `None` when it does not exist. */
  const resolve = (location: Location): Effect.Effect<Option.Option<string>, UnsafeAgentPath | AgentStorageError> => {
    if (location.directory !== path.join(location.root, location.agent) || !path.isAbsolute(location.root)) {
      return Effect.fail(
        refuse(
          location,
          location.directory,
          `the registry says agent ${location.agent} lives in ${location.directory}, which is not ` +
            `${path.join(location.root, location.agent)} inside its agents directory ${location.root}; big3 will not touch it`
        )
      )
    }
    return fs.realPath(location.directory).pipe(
      Effect.map(Option.some),
      Effect.catchTag("SystemError", (error) => error.reason === "NotFound" ? Effect.succeed(Option.none()) : Effect.fail(error)),
      Effect.mapError(storageError(location.agent, `resolve ${location.directory}`)),
      Effect.tap((resolved) => Option.isNone(resolved) ? refuseDanglingLink(location) : Effect.void)
    )
  }

  /**
   * A directory that does not resolve may be missing, or replaced (it or one above it) by a
   * symbolic link to nowhere: the latter is refused as any other link, not reported as missing
   * (and `ensure` must not create the directory through it). A recorded location was canonical
   * at creation, so a link anywhere on its path is new; an older entry's root may not be, so
   * only the root and the directory are looked at.
   */
  const refuseDanglingLink = (location: Location): Effect.Effect<void, UnsafeAgentPath> =>
    Effect.gen(function*() {
      const top = location.recorded ? path.parse(location.directory).root : path.dirname(location.root)
      for (let current = location.directory; current !== top && current !== path.dirname(current); current = path.dirname(current)) {
        const stat = yield* Effect.option(Effect.tryPromise(() => nodeFs.promises.lstat(current)))
        if (Option.isSome(stat) && stat.value.isSymbolicLink()) {
          return yield* Effect.fail(
            refuse(
              location,
              location.directory,
              `the directory of agent ${location.agent}, ${location.directory}, does not resolve: ${current} was ` +
                `replaced by a symbolic link to something that does not exist, and big3 does not follow links out of ` +
                `an agent's directory; nothing was read, written or removed`
            )
          )
        }
      }
    })

  /** Fails unless the directory resolves to itself: no symbolic link is followed out of it. */
  const checkResolved = (location: Location, resolved: string): Effect.Effect<void, UnsafeAgentPath> =>
    resolved === location.directory ? Effect.void : Effect.fail(
      refuse(
        location,
        location.directory,
        `the directory of agent ${location.agent}, ${location.directory}, now resolves to ${resolved}: it (or a ` +
          `directory above it) was replaced by a symbolic link, and big3 does not follow links out of an agent's ` +
          `directory; nothing was read, written or removed`
      )
    )

  /** The directory exists and is where it was recorded, with no link on the way. */
  const verify = (location: Location): Effect.Effect<void, UnsafeAgentPath | AgentStorageError> =>
    Effect.flatMap(resolve(location), (resolved) =>
      Option.match(resolved, {
        onNone: (): Effect.Effect<void, UnsafeAgentPath | AgentStorageError> =>
          Effect.fail(
            new AgentStorageError({
              service: "agents",
              agent: location.agent,
              message: `the directory of agent ${location.agent}, ${location.directory}, is missing`
            })
          ),
        onSome: (resolved) => checkResolved(location, resolved)
      }))

  /**
   * `verify`, creating the directory first when it is missing: a runner that takes over an agent
   * created on another machine makes the agent's directory there (same path) for its files.
   */
  const ensure = (location: Location): Effect.Effect<void, UnsafeAgentPath | AgentStorageError> =>
    Effect.flatMap(resolve(location), (resolved) =>
      Option.isSome(resolved)
        ? checkResolved(location, resolved.value)
        : fs.makeDirectory(location.directory, { recursive: true }).pipe(
          Effect.mapError(storageError(location.agent, `create ${location.directory}`)),
          Effect.zipRight(verify(location))
        ))

  /**
   * Fails unless the operator file is missing or a regular file with one link: one that became a
   * symbolic link or another name of some other file was not put there by big3, so it is left alone.
   */
  const checkWritable = (location: Location, file: string): Effect.Effect<void, UnsafeAgentPath | AgentStorageError> =>
    Effect.tryPromise({ try: () => nodeFs.promises.lstat(file), catch: (cause) => cause }).pipe(
      Effect.matchEffect({
        onFailure: (cause) =>
          codeOf(cause) === "ENOENT" ? Effect.void : Effect.fail(
            new AgentStorageError({ service: "agents", agent: location.agent, message: `could not inspect ${file}: ${messageOf(cause)}` })
          ),
        onSuccess: (stat) => {
          if (stat.isSymbolicLink()) {
            return Effect.fail(refuse(
              location,
              file,
              `${file} is a symbolic link; big3 does not follow links out of an agent's directory, so it was not written`
            ))
          }
          if (!stat.isFile()) return Effect.fail(refuse(location, file, `${file} is not a regular file, so it was not written`))
          return stat.nlink > 1 ? Effect.fail(refuse(location, file, hardLinked(file, stat.nlink, "written"))) : Effect.void
        }
      })
    )

  /** Writes an operator file atomically, never through a link (see the module comment). */
  const writeFile = (
    location: Location,
    fileName: string,
    content: string,
    unique: string
  ): Effect.Effect<void, UnsafeAgentPath | AgentStorageError> => {
    const file = path.join(location.directory, fileName)
    return verify(location).pipe(
      Effect.zipRight(checkWritable(location, file)),
      Effect.zipRight(OperatorFile.writeAtomic(fs, path, { agent: location.agent, file, content, unique }))
    )
  }

  /** The operator files of the agent, oldest first. */
  const listFiles = (location: Location): Effect.Effect<ReadonlyArray<string>, UnsafeAgentPath | AgentStorageError> =>
    Effect.zipRight(verify(location), OperatorFile.listFiles(fs, location.agent, location.directory))

  const readFailure = (location: Location, file: string) => (cause: unknown): NotFound | UnsafeAgentPath | AgentStorageError => {
    const code = codeOf(cause)
    if (code === "ENOENT") {
      return new NotFound({ service: "agents", message: `agent ${location.agent} has no operator file ${path.basename(file)}` })
    }
    // ELOOP: the last component is a link (EMLINK on some BSDs).
    if (code === "ELOOP" || code === "EMLINK") {
      return refuse(
        location,
        file,
        `${file} is a symbolic link; big3 does not follow links out of an agent's directory, so it was not read`
      )
    }
    return new AgentStorageError({ service: "agents", agent: location.agent, message: `could not read ${file}: ${messageOf(cause)}` })
  }

  /** Reads an operator file: a regular file in the agent's directory, never through a link. */
  const readFile = (location: Location, fileName: string): Effect.Effect<string, NotFound | UnsafeAgentPath | AgentStorageError> => {
    const file = path.join(location.directory, fileName)
    const failure = readFailure(location, file)
    // Not `FileSystem.open`: its flags cannot say O_NOFOLLOW.
    const read = Effect.acquireUseRelease(
      Effect.tryPromise({ try: () => nodeFs.promises.open(file, readFlags), catch: failure }),
      (handle) =>
        Effect.tryPromise({ try: () => handle.stat(), catch: failure }).pipe(
          Effect.flatMap((stat) => {
            if (!stat.isFile()) {
              return Effect.fail(refuse(location, file, `${file} is not a regular file, so it was not read`))
            }
            // Checked on the open handle, before a byte is read.
            if (stat.nlink > 1) return Effect.fail(refuse(location, file, hardLinked(file, stat.nlink, "read")))
            if (stat.size > maxReadBytes) {
              return Effect.fail(
                new AgentStorageError({
                  service: "agents",
                  agent: location.agent,
                  message: `${file} is ${stat.size} bytes, more than an operator file can be (${maxReadBytes}); it was not read`
                })
              )
            }
            return Effect.tryPromise({ try: () => handle.readFile({ encoding: "utf8" }), catch: failure })
          })
        ),
      (handle) => Effect.ignore(Effect.tryPromise(() => handle.close()))
    )
    return Effect.zipRight(verify(location), read)
  }

  /**
   * Whether `remove` may remove the agent's directory: only a recorded directory, only
   * `<root>/<agent>` inside the root it was created under, only when it still resolves to itself.
   * Succeeds with `false` when the directory is already gone.
   */
  const checkRemovable = (location: Location): Effect.Effect<boolean, UnsafeAgentPath | AgentStorageError> => {
    if (!location.recorded) {
      return Effect.fail(
        refuse(
          location,
          location.directory,
          `agent ${location.agent} was registered by an older big3 that did not record its directory, so big3 will ` +
            `not remove any directory for it (under the current settings it would be ${location.directory}, but ` +
            `nothing proves that directory is the agent's); remove it yourself if it is, then delete the agent ` +
            `with --keep-directory (Agents.delete(name, { keepDirectory: true })) to remove its registry entry`
        )
      )
    }
    return Effect.flatMap(resolve(location), (resolved) =>
      Option.match(resolved, {
        onNone: () => Effect.succeed(false),
        onSome: (resolved) => Effect.as(checkResolved(location, resolved), true)
      }))
  }

  /** Removes the agent's directory and everything in it, after `checkRemovable`. */
  const remove = (location: Location): Effect.Effect<void, UnsafeAgentPath | AgentStorageError> =>
    Effect.flatMap(checkRemovable(location), (exists) =>
      exists
        ? fs.remove(location.directory, { recursive: true }).pipe(
          Effect.catchTag("SystemError", (error) => error.reason === "NotFound" ? Effect.void : Effect.fail(error)),
          Effect.mapError(storageError(location.agent, `remove ${location.directory}`))
        )
        : Effect.void)

  return { prepareRoot, locationIn, locate, verify, ensure, writeFile, listFiles, readFile, checkRemovable, remove } as const
}

/** The disk side of the Agents service. */
export type Directory = ReturnType<typeof make>
