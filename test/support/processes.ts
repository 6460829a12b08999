/** Checks on processes by id, from /proc (Linux): what "no Chromium outlives its task" is tested with. */
import * as fs from "node:fs"

interface ProcessStat {
  readonly pid: number
  readonly command: string
  readonly state: string
  readonly parent: number
  readonly processGroup: number
}

const statOf = (pid: number): ProcessStat | undefined => {
  let text: string
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, "utf8")
  } catch {
    return undefined
  }
  // "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses, so read after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ")
  const command = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"))
  return { pid, command, state: fields[0] ?? "?", parent: Number(fields[1]), processGroup: Number(fields[2]) }
}

/** Whether `pid` is a running process (a zombie waiting to be reaped counts as gone). */
export const isRunning = (pid: number): boolean => {
  const stat = statOf(pid)
  return stat !== undefined && stat.state !== "Z"
}

/** The pids of the running processes (zombies left out) that `matches`. */
const runningWhere = (matches: (stat: ProcessStat) => boolean): ReadonlyArray<number> =>
  fs.readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map((name) => statOf(Number(name)))
    .filter((stat): stat is ProcessStat => stat !== undefined && stat.state !== "Z" && matches(stat))
    .map((stat) => stat.pid)

/** The running processes of process group `group` (Chromium's children share its group). */
export const runningInGroup = (group: number): ReadonlyArray<number> =>
  runningWhere((stat) => stat.processGroup === group)

/** The command line of `pid`, arguments split ([] when it is gone). */
export const commandLine = (pid: number): ReadonlyArray<string> => {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\u0000").filter((arg) => arg !== "")
  } catch {
    return []
  }
}

/** Running child processes of `parent` whose command name contains `name` (e.g. Chromium started by this test process). */
export const runningChildren = (parent: number, name: string): ReadonlyArray<number> =>
  runningWhere((stat) => stat.parent === parent && stat.command.includes(name))
