/** An in-memory `Spool` whose reads and writes can be made to fail, die or hang, for the spool pieces' tests. */
import { SqlError } from "@effect/sql/SqlError"
import * as Effect from "effect/Effect"
import * as Spool from "../../src/observability/Spool.js"

/** What the next call of a method does instead of working. */
export type Fault = "fail" | "die" | "hang"

/** A fake row: a spool row with its holder (`undefined`: nobody). */
interface FakeRow extends Spool.Row {
  owner: string | undefined
}

export const makeFakeSpool = (initial: ReadonlyArray<string> = []) => {
  const owner = "fake-host/1/me"
  let nextSeq = 1
  const rows: Array<FakeRow> = initial.map((id) => ({
    seq: nextSeq++,
    id,
    body: JSON.stringify({ id }),
    epoch: 0,
    ordinal: 0,
    owner: undefined
  }))
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
  const rowOf = (item: Spool.Item, held: boolean): FakeRow => ({
    seq: nextSeq++,
    id: item.id,
    body: item.body,
    epoch: item.epoch,
    ordinal: item.ordinal,
    owner: held ? owner : undefined
  })
  const find = (seq: number) => rows.find((row) => row.seq === seq)
  const size = () => ({ rows: rows.length, bytes: rows.reduce((n, row) => n + row.body.length, 0) })
  const spool: Spool.Spool = {
    owner,
    open: () => Effect.sync(() => ({ backlog: rows.length, deadLetters: 0, reclaimed: 0, held: 0, ...size() })),
    commit: (ops, _now, options) =>
      faulty(faults.commit, "write the spool", () => {
        commits.push(ops)
        const journaled = new Map<number, number>()
        for (const item of ops.journal) {
          const row = rowOf({ ...item, id: Spool.idOf(item.body), reason: Spool.heldReason, epoch: 0 }, true)
          rows.push(row)
          journaled.set(item.ordinal, row.seq)
        }
        for (const item of ops.spool) rows.push(rowOf(item, false))
        for (const { seq } of [...ops.release, ...ops.failed]) {
          const row = find(seq)
          if (row !== undefined) row.owner = undefined
        }
        for (const seq of ops.remove) {
          const index = rows.findIndex((row) => row.seq === seq)
          if (index !== -1) rows.splice(index, 1)
        }
        if (options?.releaseHeld === true) for (const row of rows) row.owner = undefined
        return { journaled }
      }),
    claim: (limit) =>
      faulty(faults.page, "read the spool", () => {
        const claimed = rows.filter((row) => row.owner === undefined).slice(0, limit)
        for (const row of claimed) row.owner = owner
        return claimed.map(({ owner: _, ...row }) => row)
      }),
    renew: () => Effect.void,
    counts: () =>
      Effect.sync(() => {
        const backlog = rows.filter((row) => row.owner === undefined).length
        return { backlog, held: rows.length - backlog }
      }),
    evict: () => Effect.sync(() => ({ count: 0, ids: [], size: size() })),
    deadLetters: () => Effect.succeed([]),
    requeueDeadLetters: () => Effect.succeed(0)
  }
  return { spool, rows, faults, commits }
}
