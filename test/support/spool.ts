/** An in-memory `Spool` whose reads and writes can be made to fail, die or hang, for the spool pieces' tests. */
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import type * as Spool from "../../src/observability/Spool.js"

/** What the next call of a method does instead of working. */
export type Fault = "fail" | "die" | "hang"

export const makeFakeSpool = (initial: ReadonlyArray<string> = []) => {
  let nextSeq = 1
  const rows: Array<Spool.Row> = initial.map((id) => ({ seq: nextSeq++, id, body: JSON.stringify({ id }), epoch: 0, ordinal: 0 }))
  const faults: { page: Array<Fault>; commit: Array<Fault> } = { page: [], commit: [] }
  const commits: Array<Spool.Ops> = []
  const faulty = <A>(queue: Array<Fault>, what: string, work: () => A): Effect.Effect<A, SqlError> =>
    Effect.suspend(() => {
      const fault = queue.shift()
      if (fault === "fail") return Effect.fail(new SqlError({ message: `cannot ${what}: disk I/O error` }))
      if (fault === "die") return Effect.die(new TypeError(`a bug while ${what}`))
      if (fault === "hang") return Effect.never
      return Effect.sync(work)
    })
  const spool: Spool.Spool = {
    open: Effect.sync(() => ({ backlog: rows.length, deadLetters: 0, claimed: 0 })),
    journal: () => Effect.sync(() => nextSeq++),
    commit: (ops) =>
      faulty(faults.commit, "write the spool", () => {
        commits.push(ops)
        for (const item of ops.spool) rows.push({ seq: nextSeq++, id: item.id, body: item.body, epoch: item.epoch, ordinal: item.ordinal })
        for (const seq of ops.remove) {
          const index = rows.findIndex((row) => row.seq === seq)
          if (index !== -1) rows.splice(index, 1)
        }
      }),
    page: (limit) => faulty(faults.page, "read the spool", () => rows.slice(0, limit)),
    deadLetters: () => Effect.succeed([]),
    requeueDeadLetters: () => Effect.succeed(0)
  }
  return { spool, rows, faults, commits }
}
