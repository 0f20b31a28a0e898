// A Worker module that starts but refuses every reload it is asked to plan,
// for tests/workers/supervisor_test.ts (a reload is all or none).
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<{ type?: string; reload?: number }>) => void) | null;
  postMessage(message: unknown): void;
};
scope.onmessage = (event) => {
  const message = event.data;
  if (message.type === undefined) scope.postMessage({ type: "ready" });
  if (message.type === "prepare") {
    scope.postMessage({ type: "prepared", reload: message.reload, error: "injected refusal" });
  }
};
