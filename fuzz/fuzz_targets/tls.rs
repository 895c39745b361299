#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| apitool_fuzz::tls(data));
