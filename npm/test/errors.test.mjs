// The error codes: one list (kept equal to the Rust enum by
// crates/syncline-core/tests/error_codes.rs), and errors from the wasm core
// turned into SynclineErrors with a code from it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SYNCLINE_ERROR_CODES, SynclineError, isSynclineErrorCode, toSynclineError } from "../.test-build/errors.js";

test("the list has each code once, and the access codes among them", () => {
  assert.equal(new Set(SYNCLINE_ERROR_CODES).size, SYNCLINE_ERROR_CODES.length);
  for (const code of ["Unauthorized", "ReadOnly", "TokenExpired", "TokenProvider", "UnsupportedDocument", "Unproven", "Unreadable", "Closed", "Crashed", "WrongKey", "BadOption"]) {
    assert.ok(isSynclineErrorCode(code), code);
  }
  assert.ok(!isSynclineErrorCode("Nope"));
  assert.ok(!isSynclineErrorCode(undefined));
});

test("a core error keeps a known code; an unknown one becomes Internal", () => {
  const known = toSynclineError(Object.assign(new Error("gone"), { code: "DocNotFound" }));
  assert.ok(known instanceof SynclineError);
  assert.equal(known.code, "DocNotFound");
  assert.equal(known.message, "gone");
  const unknown = toSynclineError(Object.assign(new Error("odd"), { code: "Nope" }));
  assert.equal(unknown.code, "Internal");
  assert.equal(unknown.message, "odd");
  assert.equal(toSynclineError("boom").code, "Internal");
});
