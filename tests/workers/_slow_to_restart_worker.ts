// A Worker module for tests/workers/supervisor_test.ts: the first incarnation
// dies after it started, the next two cannot start, the fourth stays.
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<{ type?: string; generation: number }>) => void) | null;
  postMessage(message: unknown): void;
};
scope.onmessage = (event) => {
  if (event.data.type !== undefined) return;
  const { generation } = event.data;
  if (generation === 1 || generation === 2) {
    return scope.postMessage({ type: "failed", message: `injected start failure ${generation}` });
  }
  scope.postMessage({ type: "ready" });
  if (generation === 0) {
    setTimeout(() => {
      throw new Error("injected crash");
    }, 20);
  }
};
