/**
 * The message of whatever was thrown or rejected: an `Error`'s message, anything else as text.
 * For error text built from a foreign cause (a JSON parse, a driver, a dynamic import).
 *
 * @internal
 */
export const messageOf = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)
