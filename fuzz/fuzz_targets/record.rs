//! The CommitLog record decoder over arbitrary bytes: never a panic, never a read
//! out of bounds, whatever it is given.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pocketmq::fuzzing::record(data);
});
