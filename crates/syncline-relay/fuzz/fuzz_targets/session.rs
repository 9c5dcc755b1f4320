//! Fuzzes the relay's frame handling: decoding plus the connection state
//! machine (auth, limits, subscribe/push/snapshot/presence, fan-out between
//! three connections), with no sockets. See `syncline_relay::fuzzing` for
//! the input layout and the invariants checked.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    syncline_relay::fuzzing::run(data);
});
