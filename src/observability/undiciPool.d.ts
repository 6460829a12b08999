/**
 * undici's `Pool` on its own (the module behind `undici`'s `Pool` export): the events transport
 * needs nothing else of undici, and its index (fetch, WebSocket, cache, proxies) costs a one-event
 * `big3 events send` a noticeable part of its start-up.
 */
declare module "undici/lib/dispatcher/pool.js" {
  import { Pool } from "undici"
  export = Pool
}
