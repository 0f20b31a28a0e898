/**
 * Bad input from the command line or a config file: printed as one line and
 * the process exits with status 2. Callers catch it by class, never by text.
 */
export class ConfigError extends Error {
  override name = "ConfigError";
  /** Print the usage text after the message (e.g. no backends given). */
  readonly showUsage: boolean;

  constructor(message: string, options: { cause?: unknown; showUsage?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.showUsage = options.showUsage ?? false;
  }
}

/** Whether an accept failed for want of file descriptors (EMFILE: this process, ENFILE: system). */
export function outOfFds(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "EMFILE" || code === "ENFILE";
}

/** Why a file could not be read, for a one-line error: "no such file" or the error's message. */
export function describeFileError(error: unknown): string {
  return error instanceof Deno.errors.NotFound ? "no such file" : describe(error);
}

/** A short description of an error for a log line: its message, never a stack. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
