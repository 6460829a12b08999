/**
 * big3: the reliability runtime of the Big Three agent system.
 *
 * Each module is a namespace holding its service tag, its `layer` and its functions.
 *
 * @since 0.1.0
 */
export * as Adaptive from "./Adaptive.js"
export * as Agents from "./Agents.js"
export * as Browser from "./Browser.js"
export * as BrowserAgent from "./BrowserAgent.js"
export * as CircuitBreaker from "./CircuitBreaker.js"
export * as Errors from "./Errors.js"
export * as Gemini from "./Gemini.js"
export * as Metrics from "./Metrics.js"
export * as Observability from "./Observability.js"
export * as Realtime from "./Realtime.js"
export * as ReliabilityConfig from "./ReliabilityConfig.js"
export * as Resilience from "./Resilience.js"
export * as Runner from "./Runner.js"
export * as Runtime from "./Runtime.js"
export * as Sandbox from "./Sandbox.js"
export * as Store from "./Store.js"
export * as Voice from "./Voice.js"
export * as Telemetry from "./Telemetry.js"
