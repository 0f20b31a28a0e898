// A Worker module that answers a reload's `prepare` too late, for
// tests/workers/supervisor_test.ts; it reports each `decide` it gets as a log line.
const scope = globalThis as unknown as {
  onmessage:
    | ((event: MessageEvent<{ type?: string; reload?: number; apply?: boolean }>) => void)
    | null;
  postMessage(message: unknown): void;
};
scope.onmessage = (event) => {
  const message = event.data;
  if (message.type === undefined) scope.postMessage({ type: "ready" });
  if (message.type === "prepare") {
    setTimeout(() => scope.postMessage({ type: "prepared", reload: message.reload }), 300);
  }
  if (message.type === "decide") {
    scope.postMessage({ type: "log", lines: `decide ${message.reload} ${message.apply}\n` });
  }
};
