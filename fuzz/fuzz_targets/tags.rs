//! The tag-expression and SQL92 parsers and matchers, and the properties decoder they read.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let expr = String::from_utf8_lossy(&data[..split]);
    let props = data.get(split + 1..).unwrap_or(&[]);
    pocketmq::fuzzing::tag_expression(&expr, props);
});
