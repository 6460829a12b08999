/**
 * The sandbox's Realtime model: the client events it accepts (checked as the GA API checks them)
 * and a scripted model that answers from the conversation, so that a replayed conversation gets
 * the answer the lost one would have got.
 *
 * The first rule whose `when` occurs in the latest user message answers it: its `calls`, one
 * response each (counting the `function_call` items already in the conversation after that
 * message, replayed ones included), then its `text`. Without a rule: "sandbox answer to: <message>".
 *
 * @since 0.2.0
 */
import * as Schema from "effect/Schema"

/** One rule of the scripted model. */
export interface RealtimeRule {
  /** Answers user messages containing this text (case-insensitive); omitted: every message. */
  readonly when?: string | undefined
  /** Function calls to make, one response each, before the text answer. */
  readonly calls?: ReadonlyArray<{ readonly name: string; readonly arguments?: Readonly<Record<string, unknown>> | undefined }> | undefined
  /** The text answer; `{output}` is replaced by the last function call output. */
  readonly text?: string | undefined
}

// ---------------------------------------------------------------------------------------------
// Client events, as the sandbox checks them
// ---------------------------------------------------------------------------------------------

const Rest = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const TextPart = Schema.Struct({ type: Schema.Literal("input_text", "output_text", "text"), text: Schema.String }, Rest)
const MessageItem = Schema.Struct({
  type: Schema.Literal("message"),
  role: Schema.Literal("user", "assistant", "system"),
  content: Schema.Array(TextPart)
}, Rest)
const FunctionCallItem = Schema.Struct({
  type: Schema.Literal("function_call"),
  call_id: Schema.String,
  name: Schema.String,
  arguments: Schema.String
}, Rest)
const FunctionCallOutputItem = Schema.Struct({
  type: Schema.Literal("function_call_output"),
  call_id: Schema.String,
  output: Schema.String
}, Rest)
const Item = Schema.Union(MessageItem, FunctionCallItem, FunctionCallOutputItem)
export type Item = typeof Item.Type

export const ClientEvent = Schema.Union(
  Schema.Struct({
    type: Schema.Literal("session.update"),
    event_id: Schema.optional(Schema.String),
    session: Schema.Struct({ type: Schema.Literal("realtime") }, Rest)
  }),
  Schema.Struct({
    type: Schema.Literal("conversation.item.create"),
    event_id: Schema.optional(Schema.String),
    item: Item
  }),
  Schema.Struct({
    type: Schema.Literal("response.create"),
    event_id: Schema.optional(Schema.String),
    response: Schema.optional(Rest)
  })
)
export type ClientEvent = typeof ClientEvent.Type

export const EventType = Schema.Struct({ type: Schema.String, event_id: Schema.optional(Schema.String) })

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

export type StoredItem = Item & { readonly id: string }

export type Answer =
  | { readonly _tag: "Call"; readonly name: string; readonly arguments: string }
  | { readonly _tag: "Text"; readonly text: string }

const itemText = (item: StoredItem): string =>
  item.type === "message" ? item.content.map((part) => part.text).join("") : ""

/** What the scripted model says next, given the conversation. */
export const answer = (rules: ReadonlyArray<RealtimeRule>, conversation: ReadonlyArray<StoredItem>): Answer => {
  let lastUser = conversation.length - 1
  while (lastUser >= 0 && !(conversation[lastUser]!.type === "message" && conversation[lastUser]!.role === "user")) lastUser--
  const message = lastUser === -1 ? "" : itemText(conversation[lastUser]!)
  const rule = rules.find((candidate) =>
    candidate.when === undefined || message.toLowerCase().includes(candidate.when.toLowerCase())
  )
  const after = conversation.slice(lastUser + 1)
  const callsMade = after.filter((item) => item.type === "function_call").length
  const next = rule?.calls?.[callsMade]
  if (next !== undefined) return { _tag: "Call", name: next.name, arguments: JSON.stringify(next.arguments ?? {}) }
  const outputs = after.flatMap((item) => item.type === "function_call_output" ? [item.output] : [])
  const text = rule?.text ?? `sandbox answer to: ${message}`
  return { _tag: "Text", text: text.split("{output}").join(outputs.at(-1) ?? "") }
}

/** Splits text into a few chunks on word boundaries, as the real stream does. */
export const chunks = (text: string): ReadonlyArray<string> => {
  const words = text.split(/(?<= )/)
  const size = Math.max(1, Math.ceil(words.length / 3))
  const out: Array<string> = []
  for (let i = 0; i < words.length; i += size) out.push(words.slice(i, i + size).join(""))
  return out.length === 0 ? [""] : out
}

