/**
 * Timers of any length. Node keeps a timer's delay in a signed 32-bit field: a `setTimeout` of
 * more than 2^31 - 1 ms (24.8 days) fires after 1 ms, so a 30-day timeout would cut every call
 * at once. Effect's live `Clock` treats such a wait as infinite instead (it never fires).
 * `setLongTimeout` chains timers of at most that length, so a long wait ends when it should.
 *
 * @internal
 */

/** The longest delay one Node timer can hold: 2^31 - 1 ms, about 24.8 days. */
export const MAX_TIMER_MILLIS = 2 ** 31 - 1

/**
 * Calls `fire` once after `millis` (however long; an infinite or NaN delay never fires) and
 * returns a function that cancels it.
 */
export const setLongTimeout = (fire: () => void, millis: number): () => void => {
  if (!(millis < Infinity)) return () => {}
  let handle: ReturnType<typeof setTimeout>
  const arm = (remaining: number): void => {
    handle = remaining > MAX_TIMER_MILLIS
      ? setTimeout(() => arm(remaining - MAX_TIMER_MILLIS), MAX_TIMER_MILLIS)
      : setTimeout(fire, Math.max(0, remaining))
  }
  arm(millis)
  return () => clearTimeout(handle)
}
