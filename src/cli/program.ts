/**
 * The whole `big3` program, started by `main.ts` for every command but `--version` and (when the
 * bundle is there) `events`.
 *
 * @internal
 */
import { run } from "./app.js"
import { start } from "./start.js"

start(run)
