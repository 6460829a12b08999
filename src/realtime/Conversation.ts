/**
 * The conversation as the client keeps it, so that a new connection (a new server session) can
 * be given the same context: user messages, assistant messages, and each function call with its
 * output, in order. It is also the ledger that keeps a function call from running twice: a
 * `call_id` is recorded once, when its call first arrives, and never started again.
 *
 * Mutable and not synchronized: the session touches it only while holding its lock.
 *
 * @internal
 */
import type { ConversationItem } from "./Protocol.js"
import { assistantMessage, userMessage } from "./Protocol.js"

/** One entry of the history. A call's `output` is `undefined` while the call runs. */
export type Entry =
  | { readonly _tag: "User"; readonly text: string }
  | { readonly _tag: "Assistant"; readonly text: string }
  | {
    readonly _tag: "Call"
    readonly callId: string
    readonly name: string
    readonly arguments: string
    output: string | undefined
  }

type CallEntry = Extract<Entry, { _tag: "Call" }>

export class Conversation {
  private readonly entries: Array<Entry> = []
  private readonly calls = new Map<string, CallEntry>()

  addUser(text: string): void {
    this.entries.push({ _tag: "User", text })
  }

  addAssistant(text: string): void {
    this.entries.push({ _tag: "Assistant", text })
  }

  /** Records a new call; `false` when this `call_id` was seen before (answered or running). */
  startCall(call: { readonly callId: string; readonly name: string; readonly arguments: string }): boolean {
    if (this.calls.has(call.callId)) return false
    const entry: CallEntry = { _tag: "Call", ...call, output: undefined }
    this.calls.set(call.callId, entry)
    this.entries.push(entry)
    return true
  }

  /** Records a call's output. */
  answer(callId: string, output: string): void {
    const entry = this.calls.get(callId)
    if (entry !== undefined) entry.output = output
  }

  /** Whether the call has its output. */
  isAnswered(callId: string): boolean {
    return this.calls.get(callId)?.output !== undefined
  }

  /**
   * The items that rebuild this conversation on a new connection, in order: each message, and
   * each call followed by its output when it has one (a running call's output follows later).
   */
  replay(): ReadonlyArray<ConversationItem> {
    return this.entries.flatMap((entry): ReadonlyArray<ConversationItem> => {
      switch (entry._tag) {
        case "User":
          return [userMessage(entry.text)]
        case "Assistant":
          return [assistantMessage(entry.text)]
        case "Call": {
          const call: ConversationItem = {
            type: "function_call",
            call_id: entry.callId,
            name: entry.name,
            arguments: entry.arguments
          }
          return entry.output === undefined
            ? [call]
            : [call, { type: "function_call_output", call_id: entry.callId, output: entry.output }]
        }
      }
    })
  }

  get size(): number {
    return this.entries.length
  }
}
