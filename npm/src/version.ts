/**
 * The package's version, as in `package.json` (a unit test checks they
 * match). A tab and the shared worker it connects to must run the same
 * version: the worker protocol is checked against it, never guessed.
 */
export const PACKAGE_VERSION = "0.1.0";
