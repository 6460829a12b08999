import { afterEach, assert, beforeEach, describe, it, vi } from "@effect/vitest"
import { MAX_TIMER_MILLIS, setLongTimeout } from "../src/internal/timer.js"

describe("internal/timer", () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it("a wait longer than one Node timer can hold fires at its time, not after 1 ms", () => {
    const fired: Array<number> = []
    const start = Date.now()
    setLongTimeout(() => fired.push(Date.now() - start), 3 * MAX_TIMER_MILLIS + 5)
    vi.advanceTimersByTime(3 * MAX_TIMER_MILLIS + 4)
    assert.deepStrictEqual(fired, [])
    vi.advanceTimersByTime(1)
    assert.deepStrictEqual(fired, [3 * MAX_TIMER_MILLIS + 5])
  })

  it("cancelling a chained wait stops it, whichever link is running", () => {
    let fired = false
    const cancel = setLongTimeout(() => (fired = true), MAX_TIMER_MILLIS + 10)
    vi.advanceTimersByTime(MAX_TIMER_MILLIS + 5)
    cancel()
    vi.advanceTimersByTime(100)
    assert.isFalse(fired)
    assert.strictEqual(vi.getTimerCount(), 0)
  })

  it("an infinite wait arms no timer", () => {
    setLongTimeout(() => {}, Infinity)
    assert.strictEqual(vi.getTimerCount(), 0)
  })
})
