//! FLV tag bodies built from what MPEG-TS carries: the AVC sequence header from an access
//! unit's SPS and PPS, NALU tags from Annex B access units, and AAC tags from ADTS frames.
//! The way back of [`FlvVideo`](super::FlvVideo) and [`FlvAudio`](super::FlvAudio), for tests
//! and for a publisher that must speak FLV ([`FlvRemuxer`](super::FlvRemuxer)).

use super::{
    AAC_RAW, AAC_SEQUENCE_HEADER, AVC_NALU, AVC_SEQUENCE_HEADER, FLV_CODEC_AVC, FLV_SOUND_AAC,
    FRAME_TYPE_KEY, NAL_SPS,
};

/// The PPS NAL unit type.
const NAL_PPS: u8 = 8;
/// Frame type of an inter frame.
const FRAME_TYPE_INTER: u8 = 2;

/// The NAL units of an Annex B access unit (without start codes).
pub fn nal_units(access_unit: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= access_unit.len() {
        if access_unit[i] == 0 && access_unit[i + 1] == 0 && access_unit[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::with_capacity(starts.len());
    for (n, &start) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(access_unit.len(), |next| next - 3);
        // A four-byte start code leaves a zero behind the previous unit.
        while end > start && starts.get(n + 1).is_some() && access_unit[end - 1] == 0 {
            end -= 1;
        }
        units.push(&access_unit[start..end]);
    }
    units
}

/// The sequence header tag for the SPS and PPS in `access_unit`; `None` without them.
pub fn sequence_header(access_unit: &[u8]) -> Option<Vec<u8>> {
    let units = nal_units(access_unit);
    let sps = units.iter().find(|u| u.first().map(|h| h & 0x1F) == Some(NAL_SPS))?;
    let pps = units.iter().find(|u| u.first().map(|h| h & 0x1F) == Some(NAL_PPS))?;
    if sps.len() < 4 {
        return None;
    }
    let mut tag = vec![(FRAME_TYPE_KEY << 4) | FLV_CODEC_AVC, AVC_SEQUENCE_HEADER, 0, 0, 0];
    tag.extend_from_slice(&[1, sps[1], sps[2], sps[3], 0xFF, 0xE1]);
    tag.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    tag.extend_from_slice(sps);
    tag.push(1);
    tag.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    tag.extend_from_slice(pps);
    Some(tag)
}

/// The AAC sequence header tag (an `AudioSpecificConfig`) for frames of `config` (ADTS
/// profile, frequency index, channels).
pub fn aac_sequence_header(config: (u8, u8, u8)) -> Vec<u8> {
    let (profile, frequency, channels) = config;
    let object_type = profile + 1;
    let asc = [(object_type << 3) | (frequency >> 1), ((frequency & 1) << 7) | (channels << 3)];
    vec![AAC_TAG_BYTE, AAC_SEQUENCE_HEADER, asc[0], asc[1]]
}

/// The AAC frame tag of `raw` (a raw data block).
pub fn aac_tag(raw: &[u8]) -> Vec<u8> {
    let mut tag = Vec::with_capacity(raw.len() + 2);
    tag.extend_from_slice(&[AAC_TAG_BYTE, AAC_RAW]);
    tag.extend_from_slice(raw);
    tag
}

/// AAC, 44 kHz, 16-bit, stereo: what FLV says for AAC whatever the real format (the
/// `AudioSpecificConfig` says that).
const AAC_TAG_BYTE: u8 = (FLV_SOUND_AAC << 4) | 0x0F;

/// A NALU tag of `access_unit` with 4-byte lengths, its composition time `composition_ms`.
pub fn nalu_tag(access_unit: &[u8], keyframe: bool, composition_ms: i32) -> Vec<u8> {
    let frame_type = if keyframe { FRAME_TYPE_KEY } else { FRAME_TYPE_INTER };
    let cts = composition_ms.to_be_bytes();
    let mut tag = vec![(frame_type << 4) | FLV_CODEC_AVC, AVC_NALU, cts[1], cts[2], cts[3]];
    for unit in nal_units(access_unit) {
        tag.extend_from_slice(&(unit.len() as u32).to_be_bytes());
        tag.extend_from_slice(unit);
    }
    tag
}
