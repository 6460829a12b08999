/**
 * A PostgreSQL database per test, on a real server over 127.0.0.1:
 *
 * - `BIG3_TEST_DATABASE_URL` (what `.ci/run` exports): that server's URL; each test gets a fresh
 *   database on it, dropped afterwards;
 * - otherwise a private cluster started here (`initdb` into a temp directory, trust auth,
 *   `postgres` on a free port of 127.0.0.1), so `npm test` works alone. Its process is stopped and
 *   checked gone by pid when the scope closes, and its directory removed. As root, the server runs
 *   as `nobody` (PostgreSQL refuses root).
 *
 * No server binaries and no URL: the test fails saying so, it does not skip.
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Redacted from "effect/Redacted"
import * as Store from "../../src/Store.js"
import { freePort } from "./loopback.js"
import { isRunning } from "./processes.js"
import { tempDir } from "./tempDir.js"

const binaryDirs = (): ReadonlyArray<string> => {
  const fromPath = (process.env["PATH"] ?? "").split(":").filter((dir) => dir !== "")
  const debian = fs.existsSync("/usr/lib/postgresql")
    ? fs.readdirSync("/usr/lib/postgresql").sort().reverse().map((version) => `/usr/lib/postgresql/${version}/bin`)
    : []
  return [...fromPath, "/usr/local/bin", ...debian]
}

const findBinary = (name: string): string | undefined =>
  binaryDirs().map((dir) => path.join(dir, name)).find((file) => fs.existsSync(file))

/** The uid and gid of `nobody`, from /etc/passwd. */
const nobody = (): { readonly uid: number; readonly gid: number } => {
  const line = fs.readFileSync("/etc/passwd", "utf8").split("\n").find((entry) => entry.startsWith("nobody:"))
  const fields = line?.split(":") ?? []
  return { uid: Number(fields[2] ?? 65534), gid: Number(fields[3] ?? 65534) }
}

const canConnect = (url: string) => Effect.isSuccess(Effect.scoped(Store.makePostgres(Redacted.make(url))))

const query = (url: string, statement: string) =>
  Effect.scoped(Effect.flatMap(Store.makePostgres(Redacted.make(url)), (sql) => sql.unsafe(statement).raw)).pipe(Effect.orDie)

/** A running server: its base URL (database `postgres`) and, for a private one, its pid. */
export interface Server {
  readonly url: string
  readonly pid: number | undefined
}

/**
 * A private cluster, stopped (and checked gone by pid) with the scope: also for tests that stop the
 * database themselves (close a scope of its own), which a shared server must never be.
 */
export const privateServer: Effect.Effect<Server, never, Scope.Scope> = Effect.gen(function*() {
  const initdb = findBinary("initdb")
  const postgres = findBinary("postgres")
  if (initdb === undefined || postgres === undefined) {
    return yield* Effect.dieMessage(
      "PostgreSQL server binaries (initdb, postgres) were not found on PATH, in /usr/local/bin or /usr/lib/postgresql/*/bin: " +
        "install PostgreSQL (apt-get install postgresql) or point BIG3_TEST_DATABASE_URL at a server"
    )
  }
  const dir = yield* tempDir("big3-pg-")
  const asUser = process.getuid?.() === 0 ? nobody() : undefined
  if (asUser !== undefined) fs.chownSync(dir, asUser.uid, asUser.gid)
  const data = path.join(dir, "data")
  const init = spawnSync(initdb, ["-D", data, "-A", "trust", "-U", "big3", "-E", "UTF8", "--no-sync"], {
    encoding: "utf8",
    ...(asUser ?? {})
  })
  if (init.status !== 0) return yield* Effect.dieMessage(`initdb failed: ${init.stderr}`)
  const port = yield* freePort
  const child = yield* Effect.acquireRelease(
    Effect.sync((): ChildProcess =>
      spawn(postgres, [
        "-D", data,
        "-k", dir,
        "-p", String(port),
        "-c", "listen_addresses=127.0.0.1",
        "-c", "fsync=off",
        "-c", "synchronous_commit=off",
        "-c", "full_page_writes=off",
        "-c", "max_connections=200"
      ], { stdio: "ignore", ...(asUser ?? {}) })
    ),
    (child) =>
      Effect.gen(function*() {
        const pid = child.pid
        if (pid === undefined) return
        // SIGINT: fast shutdown (disconnect clients, stop); SIGKILL if that takes too long.
        child.kill("SIGINT")
        const giveUpAt = Date.now() + 10_000
        while (isRunning(pid) && Date.now() < giveUpAt) yield* Effect.sleep("50 millis")
        if (isRunning(pid)) child.kill("SIGKILL")
        while (isRunning(pid)) yield* Effect.sleep("50 millis")
      })
  )
  const url = `postgres://big3@127.0.0.1:${port}/postgres`
  const giveUpAt = Date.now() + 20_000
  while (!(yield* canConnect(url))) {
    if (Date.now() > giveUpAt || child.exitCode !== null) {
      return yield* Effect.dieMessage(`the private PostgreSQL (${postgres}) did not accept connections on port ${port}`)
    }
    yield* Effect.sleep("100 millis")
  }
  return { url, pid: child.pid }
})

/** `BIG3_TEST_DATABASE_URL`'s server, else a private one for the scope. */
export const server: Effect.Effect<Server, never, Scope.Scope> = Effect.suspend(() => {
  const given = process.env["BIG3_TEST_DATABASE_URL"]?.trim()
  return given === undefined || given === "" ? privateServer : Effect.succeed({ url: given, pid: undefined })
})

/** A fresh, empty database on `server`, dropped (connections and all) with the scope; its URL. */
export const database = (on: Server): Effect.Effect<string, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.gen(function*() {
      const name = `big3_test_${crypto.randomBytes(6).toString("hex")}`
      yield* query(on.url, `CREATE DATABASE ${name}`)
      const url = new URL(on.url)
      url.pathname = `/${name}`
      return { name, url: url.toString() }
    }),
    ({ name }) => query(on.url, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
  ).pipe(Effect.map(({ url }) => url))
