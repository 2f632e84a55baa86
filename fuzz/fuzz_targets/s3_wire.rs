#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| chuan_fuzz::s3_wire(data));
