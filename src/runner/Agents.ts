/**
 * Agents on the cluster: the `Agent` entity's handlers (each runs on the runner that owns the
 * agent) and the `AgentCommand` workflow, whose activity is the command's backend run.
 *
 * A command's life: the owner prepares its operator file and starts the workflow (`Dispatch`,
 * persisted before `command` returns). The workflow's one activity sends the agent a persisted
 * `Run` message and waits for its outcome; the owner executes it (`Agents.CommandHost`). If a
 * runner dies on the way, the cluster delivers what was not answered again: the workflow resumes,
 * its activity (already started) is not started twice, and the `Run` message reaches the agent's
 * new owner (the same runner restarted, or another one), which resumes the command as its next
 * attempt. The activity's recorded result makes the workflow complete once.
 *
 * @internal
 */
import * as Entity from "@effect/cluster/Entity"
import * as Activity from "@effect/workflow/Activity"
import * as Workflow from "@effect/workflow/Workflow"
import { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { Agents, CommandHost } from "../Agents.js"
import type { Dispatch } from "../Agents.js"
import { AgentEntity, DurableCommand, Outcome } from "./Protocol.js"

/** A command of an agent, run durably; its execution id is derived from `<agent>/<file>`. */
export const CommandWorkflow = Workflow.make({
  name: "big3/AgentCommand",
  payload: DurableCommand,
  success: Outcome,
  idempotencyKey: (command) => `${command.agent}/${command.file}`
})

// The cluster's own failures on the way to the agent (storage unreachable, mailbox full) are
// passing: the activity tries again, then gives up as a defect the workflow records.
const deliverySchedule = Schedule.spaced("1 second").pipe(Schedule.intersect(Schedule.recurs(60)))

/** The backend run, as the workflow's activity: the agent's owner executes it. */
const runActivity = (command: typeof DurableCommand.Type) =>
  Activity.make({
    name: "run",
    success: Outcome,
    execute: Effect.flatMap(AgentEntity.client, (client) =>
      client(command.agent).Run({ file: command.file, prompt: command.prompt, createdAt: command.createdAt })).pipe(
        Effect.retry(deliverySchedule),
        Effect.orDie
      )
  })

/** Registers the workflow with the engine. */
export const workflowLayer = CommandWorkflow.toLayer((command) => runActivity(command))

/**
 * The `Agent` entity's handlers, over this runner's Agents service and command host. Messages of
 * one agent are handled concurrently (a long `Run` does not hold up `Result`).
 */
export const entityLayer = AgentEntity.toLayer(
  Effect.gen(function*() {
    const name = (yield* Entity.CurrentAddress).entityId
    const agents = yield* Agents
    const host = yield* CommandHost
    return AgentEntity.of({
      Create: ({ payload }) => agents.create({ name, type: payload.type }),
      Command: ({ payload }) => agents.command(name, payload.prompt),
      Run: ({ payload }) => host.execute({ agent: name, ...payload }),
      Result: ({ payload }) => agents.result(name, payload.file),
      Delete: ({ payload }) => agents.delete(name, { keepDirectory: payload.keepDirectory })
    })
  }),
  { concurrency: "unbounded" }
)

/** Starts commands as `AgentCommand` workflows on this engine (returns once persisted). */
export const dispatch: Effect.Effect<Dispatch, never, WorkflowEngine> = Effect.map(WorkflowEngine, (engine) => ({
  start: (command) =>
    CommandWorkflow.execute(command, { discard: true }).pipe(Effect.asVoid, Effect.provideService(WorkflowEngine, engine))
}))

/** The entity and the workflow, registered with this runner. */
export const layer = Layer.mergeAll(entityLayer, workflowLayer)
