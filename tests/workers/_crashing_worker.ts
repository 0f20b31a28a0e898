// A Worker module whose first incarnation dies after it started, for
// tests/workers/supervisor_test.ts; a restarted one (generation > 0) stays.
const scope = globalThis as unknown as {
  onmessage: ((event: MessageEvent<{ generation: number }>) => void) | null;
  postMessage(message: unknown): void;
};
scope.onmessage = (event) => {
  scope.postMessage({ type: "ready" });
  if (event.data.generation === 0) {
    setTimeout(() => {
      throw new Error("injected crash");
    }, 20);
  }
};
