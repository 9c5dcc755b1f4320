//! syncline-core's AES-256-GCM seal/open for the browser benchmark.
//! `seal` draws a fresh 96-bit nonce per record, as the IndexedDB storage does.
use syncline_core::seal;
use wasm_bindgen::prelude::*;

fn key(bytes: &[u8]) -> Result<[u8; 32], JsError> {
    bytes.try_into().map_err(|_| JsError::new("key must be 32 bytes"))
}

/// `version ‖ nonce ‖ ciphertext+tag`, with `aad` bound.
#[wasm_bindgen]
pub fn seal(key_bytes: &[u8], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, JsError> {
    let mut nonce = [0u8; seal::NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|e| JsError::new(&e.to_string()))?;
    Ok(seal::seal(&key(key_bytes)?, nonce, aad, plaintext))
}

/// Opens what `seal` made.
#[wasm_bindgen]
pub fn open(key_bytes: &[u8], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, JsError> {
    seal::open(&key(key_bytes)?, aad, sealed).map_err(|e| JsError::new(&e.to_string()))
}

/// `n` seals then `n` opens of one record inside wasm: the cost without
/// crossing the JS boundary for each record. Returns the total ms for each.
#[wasm_bindgen]
pub fn seal_open_loop(key_bytes: &[u8], aad: &[u8], plaintext: &[u8], n: u32) -> Result<Vec<f64>, JsError> {
    let key = key(key_bytes)?;
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into())
        .map_err(|_| JsError::new("no performance"))?;
    let now_fn: js_sys::Function = js_sys::Reflect::get(&perf, &"now".into())
        .map_err(|_| JsError::new("no performance.now"))?
        .into();
    let now = || now_fn.call0(&perf).ok().and_then(|v| v.as_f64()).unwrap_or(0.0);
    let mut sealed = Vec::with_capacity(n as usize);
    let t0 = now();
    for _ in 0..n {
        let mut nonce = [0u8; seal::NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| JsError::new(&e.to_string()))?;
        sealed.push(seal::seal(&key, nonce, aad, plaintext));
    }
    let t1 = now();
    let mut total = 0usize;
    for s in &sealed {
        total += seal::open(&key, aad, s).map_err(|e| JsError::new(&e.to_string()))?.len();
    }
    let t2 = now();
    if total != plaintext.len() * n as usize {
        return Err(JsError::new("round trip lost bytes"));
    }
    Ok(vec![t1 - t0, t2 - t1])
}
