/**
 * Store without a database server: the PostgreSQL driver is loaded when a PostgreSQL store is
 * opened (not when Store.ts is), and a store that cannot be reached fails with a `SqlError`
 * naming the host and never the password. The embedded store's page cache is bounded.
 */
import { SqlError } from "@effect/sql/SqlError"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import * as net from "node:net"
import * as path from "node:path"
import * as Store from "../src/Store.js"
import { tempDir } from "./support/tempDir.js"

// A port on 127.0.0.1 that refuses connections: bound, then closed.
const closedPort = Effect.async<number>((resume) => {
  const server = net.createServer()
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    const port = typeof address === "object" && address !== null ? address.port : 0
    server.close(() => resume(Effect.succeed(port)))
  })
})

describe("Store", () => {
  it.live("a PostgreSQL store that refuses connections is a SqlError naming the host, not the password", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const url = Redacted.make(`postgres://big3:s3cret-pw@127.0.0.1:${port}/big3`)
      const error = yield* Effect.flip(Effect.scoped(Store.makePostgres(url)))
      assert.instanceOf(error, SqlError)
      assert.isTrue(error.message.startsWith(`cannot open the store (PostgreSQL at 127.0.0.1:${port}/big3): `), error.message)
      assert.notInclude(error.message, "s3cret-pw")
    }))

  it.scoped("the SQLite file store's page cache is 2 MiB (better-sqlite3's default is 16 MiB)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("big3-store-")
      const client = yield* Store.make({ filename: path.join(dir, "big3.db") })
      const rows = yield* client<{ cache_size: number }>`PRAGMA cache_size`
      assert.deepStrictEqual(rows, [{ cache_size: -2000 }])
    }))
})
