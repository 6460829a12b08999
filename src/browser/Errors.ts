/**
 * The browser's failures: one that stops the browser itself, and one that an action on the page
 * met (which the browser agent answers to the model instead of ending the task).
 *
 * @since 0.2.0
 */
import * as Schema from "effect/Schema"
import * as Errors from "../Errors.js"

/** Chromium could not be started or driven at all (not an action error, which the model is told). */
export class BrowserError extends Schema.TaggedError<BrowserError>()("BrowserError", {
  service: Schema.String,
  message: Schema.String,
  retryable: Errors.nonRetryableField
}) {}

/**
 * One action on the page failed (a navigation refused, a click on a closed page, …). Timeouts
 * are `OperationTimeout`s of `browser_page_load` / `browser_screenshot` instead.
 */
export class ActionFailed extends Schema.TaggedError<ActionFailed>()("ActionFailed", {
  service: Schema.String,
  /** The page operation that failed ("goto", "click", "screenshot", …). */
  action: Schema.String,
  message: Schema.String,
  retryable: Errors.nonRetryableField
}) {}

/** What an action on the page can fail with. */
export type ActionError = ActionFailed | Errors.OperationTimeout
