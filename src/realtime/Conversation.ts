/**
 * The conversation as the client keeps it, so that a new connection (a new server session) can
 * be given the same context: user messages, assistant messages, and each completed function call
 * with its output, in order. It is also the ledger that keeps a function call from running twice:
 * a `call_id` is recorded once, when its call first arrives, and never started again. A call still
 * running is not replayed; when it finishes, its output goes to the connection of the moment,
 * preceded by the call itself if that connection never saw it (`connection`).
 *
 * Mutable and not synchronized: the session touches it only while holding its lock.
 *
 * @internal
 */
import type { ConversationItem } from "./Protocol.js"
import { assistantMessage, userMessage } from "./Protocol.js"

/**
 * One entry of the history. A call's `output` is `undefined` while the call runs; `connection`
 * is the number of the connection whose server conversation holds the call item.
 */
export type Entry =
  | { readonly _tag: "User"; readonly text: string }
  | { readonly _tag: "Assistant"; readonly text: string }
  | {
    readonly _tag: "Call"
    readonly callId: string
    readonly name: string
    readonly arguments: string
    output: string | undefined
    connection: number
  }

type CallEntry = Extract<Entry, { _tag: "Call" }>

const callItem = (entry: CallEntry): ConversationItem => ({
  type: "function_call",
  call_id: entry.callId,
  name: entry.name,
  arguments: entry.arguments
})

export class Conversation {
  private readonly entries: Array<Entry> = []
  private readonly calls = new Map<string, CallEntry>()

  addUser(text: string): void {
    this.entries.push({ _tag: "User", text })
  }

  addAssistant(text: string): void {
    this.entries.push({ _tag: "Assistant", text })
  }

  /**
   * Records a new call that arrived on connection `connection`; `false` when this `call_id` was
   * seen before (answered or running).
   */
  startCall(call: { readonly callId: string; readonly name: string; readonly arguments: string }, connection: number): boolean {
    if (this.calls.has(call.callId)) return false
    const entry: CallEntry = { _tag: "Call", ...call, output: undefined, connection }
    this.calls.set(call.callId, entry)
    this.entries.push(entry)
    return true
  }

  /**
   * Records a call's output, to be sent on connection `connection`; returns the items that
   * connection needs: the output, preceded by the call when the connection has not seen it.
   */
  answer(callId: string, output: string, connection: number): ReadonlyArray<ConversationItem> {
    const entry = this.calls.get(callId)
    if (entry === undefined) return []
    entry.output = output
    const items = entry.connection === connection ? [] : [callItem(entry)]
    entry.connection = connection
    return [...items, { type: "function_call_output", call_id: callId, output }]
  }

  /** Whether the call has its output. */
  isAnswered(callId: string): boolean {
    return this.calls.get(callId)?.output !== undefined
  }

  /**
   * The items that rebuild this conversation on connection `connection`, in order: each message,
   * and each completed call followed by its output (a running call follows with its output).
   */
  replay(connection: number): ReadonlyArray<ConversationItem> {
    return this.entries.flatMap((entry): ReadonlyArray<ConversationItem> => {
      switch (entry._tag) {
        case "User":
          return [userMessage(entry.text)]
        case "Assistant":
          return [assistantMessage(entry.text)]
        case "Call": {
          if (entry.output === undefined) return []
          entry.connection = connection
          return [callItem(entry), { type: "function_call_output", call_id: entry.callId, output: entry.output }]
        }
      }
    })
  }

  get size(): number {
    return this.entries.length
  }
}
