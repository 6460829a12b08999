/**
 * Tests on a real filesystem that need root: a small tmpfs (`mount`) for a full disk, the
 * immutable attribute (`chattr +i`) for a store that cannot be written (root ignores file
 * modes, so `chmod` cannot make one). Each is undone when its scope closes, even when the test
 * fails.
 */
import * as Effect from "effect/Effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

const run = (command: string, args: ReadonlyArray<string>): string | undefined => {
  try {
    execFileSync(command, args, { stdio: ["ignore", "ignore", "pipe"] })
    return undefined
  } catch (error) {
    const stderr = typeof error === "object" && error !== null && "stderr" in error ? String(error.stderr).trim() : ""
    return `\`${command} ${args.join(" ")}\` failed: ${stderr === "" ? String(error) : stderr}`
  }
}

/**
 * Tries what the tests will do (mount and unmount a tmpfs, set and clear the immutable attribute)
 * on a scratch directory: `undefined` when it works, else why not.
 */
const probe = (): string | undefined => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-privileged-"))
  try {
    const mounted = run("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir])
    if (mounted !== undefined) return mounted
    const file = path.join(dir, "probe")
    fs.writeFileSync(file, "")
    const immutable = run("chattr", ["+i", file]) ?? run("chattr", ["-i", file])
    return run("umount", [dir]) ?? immutable
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Fails the test, saying why, unless this process may mount a tmpfs and set the immutable
 * attribute (root, with CAP_SYS_ADMIN and CAP_LINUX_IMMUTABLE). Never a skip: a run without the
 * privileges is a run that did not test the disk.
 */
export const requirePrivileges: Effect.Effect<void> = Effect.suspend(() => {
  const uid = process.getuid?.()
  const why = uid !== 0 ? `this process runs as uid ${uid ?? "unknown"}, not root` : probe()
  return why === undefined ? Effect.void : Effect.dieMessage(
    `these tests need root, to mount a tmpfs (a full disk) and to set the immutable attribute (chattr +i): ${why}. ` +
      `Run them as root on Linux; they are not skipped without it`
  )
})

/** A tmpfs of `size` (as `mount -o size=` reads it: "600k") on a fresh directory, unmounted and removed when the scope closes. */
export const tmpfs = (size: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "big3-tmpfs-"))
      const failed = run("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir])
      if (failed !== undefined) {
        fs.rmdirSync(dir)
        throw new Error(failed)
      }
      return dir
    }),
    (dir) =>
      Effect.sync(() => {
        // A file left immutable would make the unmount's directory removal fail: clear it first.
        run("chattr", ["-R", "-i", dir])
        const failed = run("umount", [dir])
        if (failed !== undefined) throw new Error(failed)
        fs.rmdirSync(dir)
      })
  )

/** Grows (or shrinks) a tmpfs mounted by `tmpfs`, as making room on a full disk. */
export const resizeTmpfs = (dir: string, size: string): Effect.Effect<void> =>
  Effect.sync(() => {
    const failed = run("mount", ["-o", `remount,size=${size}`, dir])
    if (failed !== undefined) throw new Error(failed)
  })

/** Sets the immutable attribute on `file` until the scope closes (then clears it, even when the test failed). */
export const immutable = (file: string) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const failed = run("chattr", ["+i", file])
      if (failed !== undefined) throw new Error(failed)
      return file
    }),
    () =>
      Effect.sync(() => {
        const failed = run("chattr", ["-i", file])
        if (failed !== undefined) throw new Error(failed)
      })
  )
