/**
 * Host names as SNI carries them (RFC 6066 §3) and as routes name them: one
 * check and one normal form, shared by the parser and the routes.
 *
 * @module
 */

/** Most bytes of a HostName in a ClientHello, a trailing dot included. */
export const MAX_HOST_NAME_BYTES = 255;

/** Outcome of {@linkcode checkHostName}. */
export type HostNameCheck =
  /** A DNS host name, in normal form: lower case, no trailing dot. */
  | { kind: "name"; name: string }
  /** An IPv4 or IPv6 literal, which RFC 6066 forbids in HostName. */
  | { kind: "ip" }
  /** Neither: `problem` completes "... as the name ...". */
  | { kind: "invalid"; problem: string };

const _LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const _DIGITS = /^[0-9]+$/;
const _NON_ASCII = /[\u0080-\uffff]/;
const _IPV6 = /^\[?[0-9a-f.]*:[0-9a-f.]*:[0-9a-f:.]*(?:%[^\]]*)?\]?$/;

/**
 * Checks `raw` as a DNS host name (RFC 1123 §2.1): dot-separated labels of
 * 1-63 ASCII letters, digits and hyphens, a hyphen neither first nor last,
 * at most 255 bytes. One trailing dot is dropped and letters are lower-cased.
 *
 * An IP literal is told apart: an IPv6 address (with a colon, maybe in
 * brackets) or a name whose last label is all digits, which covers dotted
 * IPv4 and its short forms (`127.1`) and is never a host name as no top-level
 * domain is all digits (RFC 3696 §2).
 *
 * @param raw The name as received or configured.
 * @returns The normal form, `ip`, or what is wrong.
 */
export function checkHostName(raw: string): HostNameCheck {
  if (raw.length === 0) return { kind: "invalid", problem: "is empty" };
  if (raw.length > MAX_HOST_NAME_BYTES) {
    return { kind: "invalid", problem: `is longer than ${MAX_HOST_NAME_BYTES} bytes` };
  }
  // Checked before lower-casing: "\u212a".toLowerCase() is an ASCII "k".
  if (_NON_ASCII.test(raw)) {
    return { kind: "invalid", problem: "has a character outside ASCII (IDNs go as A-labels)" };
  }
  const name = (raw.endsWith(".") ? raw.slice(0, -1) : raw).toLowerCase();
  if (_IPV6.test(name)) return { kind: "ip" };
  const labels = name.split(".");
  if (_DIGITS.test(labels[labels.length - 1]!)) return { kind: "ip" };
  for (const label of labels) {
    if (label.length === 0) return { kind: "invalid", problem: "has an empty label" };
    if (label.length > 63) {
      return { kind: "invalid", problem: "has a label longer than 63 bytes" };
    }
    if (!_LABEL.test(label)) {
      return {
        kind: "invalid",
        problem: "has a label with a character other than a letter, digit or inner hyphen",
      };
    }
  }
  return { kind: "name", name };
}
