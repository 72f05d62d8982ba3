//! openh264's log lines go through `tracing`, not the process's stderr.
//!
//! openh264 prints warnings itself (`[OpenH264] this = 0x..., Warning: bEnableFrameSkip = 0,
//! bitrate can't be controlled ...` once per encoder, during its first `InitializeExt`). The
//! Rust bindings set the trace level only after that call, so a library user sees raw lines on
//! stderr no log filter can catch. openh264 accepts a trace callback before initialisation: we
//! install one that forwards each line as a `tracing` event (target `openh264`), warnings at
//! `debug` because they describe settings chosen on purpose (see [`crate::h264`]).
//!
//! This is the workspace's one piece of FFI: `unsafe` is allowed here and nowhere else.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void, CStr};

use openh264::encoder::Encoder;
use openh264_sys2::{
    WelsTraceCallback, ENCODER_OPTION_TRACE_CALLBACK, WELS_LOG_ERROR, WELS_LOG_INFO, WELS_LOG_WARNING,
};

/// Routes `encoder`'s log lines to `tracing`. Call before the first frame (before openh264
/// initialises). Returns openh264's status code when it refuses (0 is success).
pub(crate) fn route_to_tracing(encoder: &mut Encoder) -> Result<(), c_int> {
    let mut callback: WelsTraceCallback = Some(forward);
    // SAFETY: the encoder is alive (we hold `&mut`), openh264 accepts the trace options before
    // `InitializeExt` and reads the function pointer from the pointed-to value during the call
    // only; `forward` stays valid for the life of the program.
    let status = unsafe {
        encoder.raw_api().set_option(ENCODER_OPTION_TRACE_CALLBACK, std::ptr::from_mut(&mut callback).cast())
    };
    if status == 0 {
        Ok(())
    } else {
        Err(status)
    }
}

/// openh264's trace callback: one formatted, NUL-terminated line per call.
unsafe extern "C" fn forward(_ctx: *mut c_void, level: c_int, line: *const c_char) {
    if line.is_null() {
        return;
    }
    // SAFETY: openh264 passes a NUL-terminated buffer that lives for the duration of the call.
    let line = unsafe { CStr::from_ptr(line) }.to_string_lossy();
    let line = line.trim_end();
    // Never unwind into C: a panicking subscriber must not abort the encoder's thread.
    let _ = std::panic::catch_unwind(|| emit(level, line));
}

fn emit(level: c_int, line: &str) {
    if level <= WELS_LOG_ERROR {
        tracing::error!(target: "openh264", "{line}");
    } else if level <= WELS_LOG_WARNING {
        tracing::debug!(target: "openh264", "{line}");
    } else if level <= WELS_LOG_INFO {
        tracing::trace!(target: "openh264", "{line}");
    }
}
