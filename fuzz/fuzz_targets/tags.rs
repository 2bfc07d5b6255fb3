//! The tag-expression parser and matcher, and the properties decoder it reads.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let expr = String::from_utf8_lossy(&data[..split]);
    let props = data.get(split + 1..).unwrap_or(&[]);
    pocketmq::fuzzing::tag_expression(&expr, props);
});
