/**
 * Where a repo's storage key comes from. Every record the engine writes to
 * IndexedDB is encrypted with this 32-byte key (AES-256-GCM).
 *
 * - `key`: 32 bytes the app supplies (e.g. from its own key management).
 *   Protects against anyone reading the disk or the browser profile who
 *   does not also have the app's key; the app must keep it safe — lose it
 *   and the local data is unreadable (documents can still be fetched again
 *   from the relay with their URLs).
 * - `passphrase`: the key is derived with PBKDF2-SHA256, 600,000
 *   iterations, and a random salt stored beside the data. Protects against
 *   disk theft as long as the passphrase is strong; a weak passphrase can be
 *   guessed offline.
 * - neither (default): a random data key, wrapped by a non-extractable
 *   WebCrypto key kept in IndexedDB. Nothing readable is stored and no
 *   script can export the wrapping key, but anything running as this
 *   browser profile on this origin can unwrap it: it protects against
 *   copying the raw files (backups, forensic images of the data), not
 *   against malware in the profile or XSS in the app.
 *
 * The key is never put in a cookie: cookies travel to servers, and browsers
 * expire them, stranding the data.
 */
import { SynclineError } from "./errors.js";

export interface KeyOptions {
  /** A 32-byte storage key from the app. */
  key?: Uint8Array;
  /** A passphrase; the key is derived from it (PBKDF2-SHA256, 600,000 iterations). */
  passphrase?: string;
}

export const PBKDF2_ITERATIONS = 600_000;
const KEYS_DB = "syncline-keys";
const STORE = "keys";

type KeyRecord =
  | { kind: "passphrase"; salt: Uint8Array<ArrayBuffer> }
  | { kind: "device"; wrappingKey: CryptoKey; iv: Uint8Array<ArrayBuffer>; wrapped: ArrayBuffer };

/** The 32-byte storage key for the repo `name`. */
export async function storageKey(name: string, options: KeyOptions): Promise<Uint8Array> {
  if (options.key !== undefined && options.passphrase !== undefined) {
    throw new SynclineError("BadOption", "pass either `key` or `passphrase`, not both");
  }
  if (options.key !== undefined) {
    if (!(options.key instanceof Uint8Array) || options.key.length !== 32) {
      throw new SynclineError("BadKey", "`key` must be a Uint8Array of exactly 32 bytes");
    }
    return options.key;
  }
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new SynclineError("Unsupported", "WebCrypto is not available (a secure context, https or localhost, is needed)");
  if (options.passphrase !== undefined) {
    if (typeof options.passphrase !== "string" || options.passphrase === "") {
      throw new SynclineError("BadOption", "`passphrase` must be a non-empty string");
    }
    return fromPassphrase(subtle, name, options.passphrase);
  }
  return fromDeviceKey(subtle, name);
}

async function fromPassphrase(subtle: SubtleCrypto, name: string, passphrase: string): Promise<Uint8Array> {
  const record = await readOrCreate(`passphrase:${name}`, "passphrase", async () => ({
    kind: "passphrase",
    salt: crypto.getRandomValues(new Uint8Array(16)),
  }));
  const material = await subtle.importKey("raw", new TextEncoder().encode(passphrase), "PBKDF2", false, ["deriveBits"]);
  const bits = await subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: record.salt, iterations: PBKDF2_ITERATIONS },
    material,
    256,
  );
  return new Uint8Array(bits);
}

async function fromDeviceKey(subtle: SubtleCrypto, name: string): Promise<Uint8Array> {
  const record = await readOrCreate(`device:${name}`, "device", async () => {
    const wrappingKey = await subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
    const dataKey = crypto.getRandomValues(new Uint8Array(32));
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const wrapped = await subtle.encrypt({ name: "AES-GCM", iv }, wrappingKey, dataKey);
    return { kind: "device", wrappingKey, iv, wrapped };
  });
  try {
    const raw = await subtle.decrypt({ name: "AES-GCM", iv: record.iv }, record.wrappingKey, record.wrapped);
    return new Uint8Array(raw);
  } catch {
    throw new SynclineError("WrongKey", "this browser's device key for the repo can no longer unwrap its data key");
  }
}

/**
 * The stored record `id` of this kind, made with `make()` and stored first
 * if there is none. First-time set-up is atomic across tabs: two tabs
 * opening the repo at once must end with the same record (the same salt,
 * the same device key), or each would encrypt with its own key.
 *
 * `make()` is asynchronous (WebCrypto), so it can't run inside an IndexedDB
 * transaction (which commits as soon as it has no request pending). It
 * makes a candidate instead, and one read-write transaction then reads the
 * record again and writes the candidate only if there still is none.
 * IndexedDB runs read-write transactions on the same store one after the
 * other, across tabs too: the second tab's transaction sees the first's
 * record and keeps it, dropping its own candidate.
 */
async function readOrCreate<K extends KeyRecord["kind"]>(
  id: string,
  kind: K,
  make: () => Promise<Extract<KeyRecord, { kind: K }>>,
): Promise<Extract<KeyRecord, { kind: K }>> {
  type Wanted = Extract<KeyRecord, { kind: K }>;
  const isWanted = (record: KeyRecord | undefined): record is Wanted => record?.kind === kind;
  const db = await openKeysDb();
  try {
    const existing = await new Promise<KeyRecord | undefined>((resolve, reject) => {
      const request = db.transaction(STORE, "readonly").objectStore(STORE).get(id);
      request.onsuccess = () => resolve(request.result as KeyRecord | undefined);
      request.onerror = () => reject(new SynclineError("Storage", `cannot read the key database: ${request.error?.message}`));
    });
    if (isWanted(existing)) return existing;
    const candidate = await make();
    return await new Promise<Wanted>((resolve, reject) => {
      const tx = db.transaction(STORE, "readwrite");
      const store = tx.objectStore(STORE);
      let kept: Wanted = candidate;
      const read = store.get(id);
      read.onsuccess = () => {
        const found = read.result as KeyRecord | undefined;
        if (isWanted(found)) kept = found;
        else store.put(candidate, id);
      };
      tx.oncomplete = () => resolve(kept);
      tx.onerror = () => reject(new SynclineError("Storage", `cannot write the key database: ${tx.error?.message}`));
      tx.onabort = () => reject(new SynclineError("Storage", `cannot write the key database: ${tx.error?.message ?? "aborted"}`));
    });
  } finally {
    db.close();
  }
}

function openKeysDb(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(KEYS_DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(new SynclineError("Storage", `cannot open the key database: ${request.error?.message}`));
  });
}
