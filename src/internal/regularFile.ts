/**
 * Reads a settings file that a person named: only a regular file, of bounded size. Anything
 * else a path can name is refused before it is read: `/dev/zero` would be read until memory ran
 * out, a FIFO would block the open (a thread of libuv's pool, and the process with it) until a
 * writer came, a directory has no text.
 *
 * The file is opened with `O_NONBLOCK` (a FIFO opens at once instead of waiting for a writer),
 * its kind and size are checked on the open handle (no race with a rename), and at most
 * `maxBytes + 1` bytes are read (a file that grows after the check is still bounded).
 *
 * @internal
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import { messageOf } from "./messageOf.js"

/** Why a file was not read, in words for a message. */
export interface FileRefused {
  readonly _tag: "FileRefused"
  readonly reason: "missing" | "not-regular" | "too-large" | "unreadable"
  readonly detail: string
}

const refused = (reason: FileRefused["reason"], detail: string): FileRefused => ({ _tag: "FileRefused", reason, detail })

const codeOf = (cause: unknown): string | undefined =>
  typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string" ? cause.code : undefined

const unreadable = (cause: unknown): FileRefused => {
  const code = codeOf(cause)
  if (code === "ENOENT") return refused("missing", "the file does not exist")
  const message = messageOf(cause)
  return refused("unreadable", `the file cannot be read (${message.slice(0, 200)})`)
}

const kindOf = (stat: fs.Stats): string =>
  stat.isDirectory()
    ? "a directory"
    : stat.isFIFO()
    ? "a FIFO"
    : stat.isCharacterDevice()
    ? "a character device"
    : stat.isBlockDevice()
    ? "a block device"
    : stat.isSocket()
    ? "a socket"
    : "not a regular file"

const openFlags = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0)

const readBounded = async (handle: fs.promises.FileHandle, maxBytes: number): Promise<string | FileRefused> => {
  const stat = await handle.stat()
  if (!stat.isFile()) return refused("not-regular", `it is ${kindOf(stat)}; expected a regular file`)
  if (stat.size > maxBytes) return refused("too-large", `the file is ${stat.size} bytes; expected at most ${maxBytes}`)
  const buffer = Buffer.alloc(Math.min(stat.size, maxBytes) + 1)
  let length = 0
  while (length < buffer.length) {
    const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length)
    if (bytesRead === 0) break
    length += bytesRead
  }
  if (length > maxBytes) return refused("too-large", `the file grew past ${maxBytes} bytes while it was read`)
  return buffer.toString("utf8", 0, length)
}

/** The text of the regular file at `path`, of at most `maxBytes` bytes. */
export const readRegularFile = (path: string, maxBytes: number): Effect.Effect<string, FileRefused> =>
  Effect.acquireUseRelease(
    Effect.tryPromise({ try: () => fs.promises.open(path, openFlags), catch: unreadable }),
    (handle) =>
      Effect.flatMap(
        Effect.tryPromise({ try: () => readBounded(handle, maxBytes), catch: unreadable }),
        (result) => typeof result === "string" ? Effect.succeed(result) : Effect.fail(result)
      ),
    (handle) => Effect.ignore(Effect.tryPromise(() => handle.close()))
  )
