//! H.264 bitstream facts shared by the encoder, the decoder and the TS demuxer: NAL unit
//! types and scans over Annex B access units (NAL units behind `00 00 01` start codes). No
//! codec library is needed for these, so the demuxer builds without openh264.

/// NAL unit type of a non-IDR slice.
pub const NAL_SLICE: u8 = 1;
/// NAL unit type of an IDR slice.
pub const NAL_IDR: u8 = 5;
/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;
/// NAL unit type of an access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// The NAL unit type of one NAL unit that starts with an Annex B start code.
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    let body = strip_start_code(nal)?;
    body.first().map(|b| b & 0x1F)
}

fn strip_start_code(nal: &[u8]) -> Option<&[u8]> {
    if nal.starts_with(&[0, 0, 0, 1]) {
        Some(&nal[4..])
    } else if nal.starts_with(&[0, 0, 1]) {
        Some(&nal[3..])
    } else {
        None
    }
}

/// NAL unit types of an Annex B access unit, in order (for inspection and tests).
pub fn nal_unit_types(access_unit: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut i = 0;
    while i + 3 <= access_unit.len() {
        if access_unit[i] == 0 && access_unit[i + 1] == 0 && access_unit[i + 2] == 1 {
            if let Some(&b) = access_unit.get(i + 3) {
                types.push(b & 0x1F);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    types
}

/// Whether an Annex B H.264 access unit holds an IDR slice.
pub fn has_idr(data: &[u8]) -> bool {
    let mut i = 0;
    while i + 3 < data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            let nal_type = data[i + 3] & 0x1F;
            match nal_type {
                NAL_IDR => return true,
                // A non-IDR slice: the picture is not a random access point.
                NAL_SLICE => return false,
                _ => {}
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nal_types_are_parsed() {
        let au = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 9];
        assert_eq!(nal_unit_types(&au), vec![7, 8, 5]);
        assert_eq!(nal_type(&[0, 0, 0, 1, 0x41]), Some(1));
        assert_eq!(nal_type(&[1, 2]), None);
    }

    #[test]
    fn idr_detection() {
        assert!(has_idr(&[0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x65]));
        assert!(!has_idr(&[0, 0, 1, 0x41, 0, 0, 1, 0x65]));
        assert!(!has_idr(&[0, 0, 1]));
        assert!(!has_idr(&[]));
    }
}
