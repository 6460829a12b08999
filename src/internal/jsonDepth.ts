/**
 * Nesting depth of parsed JSON, walked with an explicit stack: the recursive walkers
 * (`JSON.stringify`, deep equality) overflow the call stack near 8,000 levels on Node 20, and
 * this check must answer for any value `JSON.parse` gives (it parses a million levels).
 *
 * @internal
 */

/**
 * Whether `value` nests deeper than `limit` levels of objects and arrays (a scalar is level 0,
 * `{}` and `[]` are level 1). Stops at the first path past the limit.
 */
export const nestsDeeperThan = (value: unknown, limit: number): boolean => {
  const pending: Array<readonly [value: unknown, depth: number]> = [[value, 0]]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [current, depth] = next
    if (typeof current !== "object" || current === null) continue
    if (depth + 1 > limit) return true
    for (const child of Object.values(current)) {
      if (typeof child === "object" && child !== null) pending.push([child, depth + 1])
    }
  }
  return false
}
