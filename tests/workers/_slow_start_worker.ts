// A Worker module for tests/workers/supervisor_test.ts: the first incarnation
// dies soon after it started; the next takes 300 ms to be ready. Each logs (as
// access-log lines, `g<generation> ...`) its start and a `stop`, which it
// answers by stopping.
const scope = globalThis as unknown as {
  onmessage:
    | ((event: MessageEvent<{ type?: string; generation: number; signal?: string }>) => void)
    | null;
  postMessage(message: unknown): void;
};
let generation = 0;
const log = (text: string) => scope.postMessage({ type: "log", lines: `g${generation} ${text}\n` });
scope.onmessage = (event) => {
  const message = event.data;
  if (message.type === "stop") {
    log(`stop ${message.signal}`);
    return scope.postMessage({ type: "stopped" });
  }
  if (message.type !== undefined) return;
  generation = message.generation;
  log("start");
  if (generation > 0) return void setTimeout(() => scope.postMessage({ type: "ready" }), 300);
  scope.postMessage({ type: "ready" });
  setTimeout(() => {
    throw new Error("injected crash");
  }, 20);
};
