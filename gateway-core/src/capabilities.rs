//! Capabilities: what an orchestrator can do, and what a job asks for.
//!
//! Numeric ids are go-livepeer's wire values (`core/capabilities.go`); display names match its
//! `CapabilityNameLookup`; pipeline ids (`live-video-to-video`, `byoc`) match the discovery
//! query strings used by the remote signer and the Python SDK. A job states its needs as
//! `pipeline/model` queries (`byoc/text-reversal`), which [`build_capabilities`] turns into the
//! protobuf [`Capabilities`] sent with `GetOrchestrator`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::lp_rpc::capabilities::{
    capability_constraints::ModelConstraint, CapabilityConstraints, Constraints,
};
use crate::lp_rpc::Capabilities;

macro_rules! capabilities {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal, $name:literal, $pipeline:literal; )*) => {
        /// A capability with its go-livepeer wire id.
        ///
        /// The internal markers `Invalid` (-2) and `Unused` (-1) never appear on the wire and are
        /// not represented.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum Capability {
            $( $(#[$doc])* $variant = $id, )*
        }

        impl Capability {
            /// Every capability, in wire-id order.
            pub const ALL: &'static [Capability] = &[$(Capability::$variant,)*];

            /// The capability with this wire id.
            pub fn from_id(id: u32) -> Option<Capability> {
                match id { $( $id => Some(Capability::$variant), )* _ => None }
            }

            /// go-livepeer's display name, e.g. `Live video to video`.
            pub fn display_name(self) -> &'static str {
                match self { $( Capability::$variant => $name, )* }
            }

            /// The pipeline id used in discovery queries, e.g. `live-video-to-video`.
            pub fn pipeline_id(self) -> &'static str {
                match self { $( Capability::$variant => $pipeline, )* }
            }

            /// The capability whose pipeline id this is (exact, lower-case).
            pub fn from_pipeline_id(pipeline: &str) -> Option<Capability> {
                match pipeline { $( $pipeline => Some(Capability::$variant), )* _ => None }
            }
        }
    };
}

capabilities! {
    /// H.264 transcoding.
    H264 = 0, "H.264", "h264";
    /// MPEG-TS container.
    Mpegts = 1, "MPEGTS", "mpegts";
    /// MP4 container.
    Mp4 = 2, "MP4", "mp4";
    /// Non-integer frame rates.
    FractionalFramerates = 3, "Fractional framerates", "fractional-framerates";
    /// Direct object storage.
    StorageDirect = 4, "Storage direct", "storage-direct";
    /// S3 object storage.
    StorageS3 = 5, "Storage S3", "storage-s3";
    /// GCS object storage.
    StorageGcs = 6, "Storage GCS", "storage-gcs";
    /// H.264 baseline profile.
    H264BaselineProfile = 7, "H264 Baseline profile", "h264-baseline-profile";
    /// H.264 main profile.
    H264MainProfile = 8, "H264 Main profile", "h264-main-profile";
    /// H.264 high profile.
    H264HighProfile = 9, "H264 High profile", "h264-high-profile";
    /// H.264 constrained high profile.
    H264ConstrainedHighProfile = 10, "H264 Constrained, Contained High profile", "h264-constrained-contained-high-profile";
    /// GOP control.
    Gop = 11, "GOP", "gop";
    /// Auth tokens.
    AuthToken = 12, "Auth token", "auth-token";
    /// Deprecated; kept so ids stay aligned.
    SceneClassification = 13, "Scene classification", "scene-classification";
    /// MPEG-7 video signature.
    Mpeg7Signature = 14, "MPEG7 signature", "mpeg7-signature";
    /// HEVC decoding.
    HevcDecode = 15, "HEVC decode", "hevc-decode";
    /// HEVC encoding.
    HevcEncode = 16, "HEVC encode", "hevc-encode";
    /// VP8 decoding.
    Vp8Decode = 17, "VP8 decode", "vp8-decode";
    /// VP9 decoding.
    Vp9Decode = 18, "VP9 decode", "vp9-decode";
    /// VP8 encoding.
    Vp8Encode = 19, "VP8 encode", "vp8-encode";
    /// VP9 encoding.
    Vp9Encode = 20, "VP9 encode", "vp9-encode";
    /// H.264 4:4:4 8-bit decoding.
    H264DecodeYuv444_8bit = 21, "H264 Decode YUV444 8-bit", "h264-decode-yuv444-8bit";
    /// H.264 4:2:2 8-bit decoding.
    H264DecodeYuv422_8bit = 22, "H264 Decode YUV422 8-bit", "h264-decode-yuv422-8bit";
    /// H.264 4:4:4 10-bit decoding.
    H264DecodeYuv444_10bit = 23, "H264 Decode YUV444 10-bit", "h264-decode-yuv444-10bit";
    /// H.264 4:2:2 10-bit decoding.
    H264DecodeYuv422_10bit = 24, "H264 Decode YUV422 10-bit", "h264-decode-yuv422-10bit";
    /// H.264 4:2:0 10-bit decoding.
    H264DecodeYuv420_10bit = 25, "H264 Decode YUV420 10-bit", "h264-decode-yuv420-10bit";
    /// Segment slicing.
    SegmentSlicing = 26, "Segment slicing", "segment-slicing";
    /// AI text-to-image.
    TextToImage = 27, "Text to image", "text-to-image";
    /// AI image-to-image.
    ImageToImage = 28, "Image to image", "image-to-image";
    /// AI image-to-video.
    ImageToVideo = 29, "Image to video", "image-to-video";
    /// AI upscaling.
    Upscale = 30, "Upscale", "upscale";
    /// AI speech recognition.
    AudioToText = 31, "Audio to text", "audio-to-text";
    /// AI segmentation.
    SegmentAnything2 = 32, "Segment anything 2", "segment-anything-2";
    /// AI language model.
    Llm = 33, "Llm", "llm";
    /// AI image captioning.
    ImageToText = 34, "Image to text", "image-to-text";
    /// Live video-to-video (LV2V): trickle in, trickle out.
    LiveVideoToVideo = 35, "Live video to video", "live-video-to-video";
    /// AI speech synthesis.
    TextToSpeech = 36, "Text to speech", "text-to-speech";
    /// Bring your own container: the model constraint is the registered capability name.
    Byoc = 37, "byoc", "byoc";
}

/// Capabilities a go-livepeer gateway always advertises in discovery (0–12, 14, 26).
pub const DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::H264,
    Capability::Mpegts,
    Capability::Mp4,
    Capability::FractionalFramerates,
    Capability::StorageDirect,
    Capability::StorageS3,
    Capability::StorageGcs,
    Capability::H264BaselineProfile,
    Capability::H264MainProfile,
    Capability::H264HighProfile,
    Capability::H264ConstrainedHighProfile,
    Capability::Gop,
    Capability::AuthToken,
    Capability::Mpeg7Signature,
    Capability::SegmentSlicing,
];

impl Capability {
    /// The wire id.
    pub fn id(self) -> u32 {
        self as u32
    }
}

impl fmt::Display for Capability {
    /// `Name (id)`, as the Python SDK's `format_capability`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.display_name(), self.id())
    }
}

/// One `pipeline/model` requirement, e.g. `byoc/text-reversal`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CapabilityQuery {
    /// The capability (pipeline).
    pub capability: Capability,
    /// The model id, or for BYOC the registered capability name. May itself contain `/`
    /// (Hugging Face ids such as `stabilityai/sd-turbo`).
    pub model: String,
}

impl CapabilityQuery {
    /// A query for `capability` with `model`, validating the model name.
    pub fn new(capability: Capability, model: impl Into<String>) -> Result<Self, CapabilityError> {
        let model = model.into();
        let query = format!("{}/{}", capability.pipeline_id(), model);
        validate_model(&model, &query)?;
        Ok(CapabilityQuery { capability, model })
    }

    /// A BYOC query for a registered capability name.
    pub fn byoc(name: impl Into<String>) -> Result<Self, CapabilityError> {
        Self::new(Capability::Byoc, name)
    }
}

impl fmt::Display for CapabilityQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.capability.pipeline_id(), self.model)
    }
}

impl FromStr for CapabilityQuery {
    type Err = CapabilityError;

    /// Parses exactly one `pipeline/model` entry (no commas).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let query = s.trim();
        if query.is_empty() {
            return Err(CapabilityError::Empty { input: s.to_owned() });
        }
        let Some((pipeline, model)) = query.split_once('/') else {
            return Err(CapabilityError::MissingModel { query: query.to_owned() });
        };
        let capability = Capability::from_pipeline_id(&pipeline.to_ascii_lowercase()).ok_or_else(|| {
            CapabilityError::UnknownPipeline { pipeline: pipeline.to_owned(), query: query.to_owned() }
        })?;
        validate_model(model, query)?;
        Ok(CapabilityQuery { capability, model: model.to_owned() })
    }
}

fn validate_model(model: &str, query: &str) -> Result<(), CapabilityError> {
    let bad =
        |reason| CapabilityError::InvalidModel { model: model.to_owned(), query: query.to_owned(), reason };
    if model.is_empty() {
        return Err(bad("the model is empty"));
    }
    if model.len() > 256 {
        return Err(bad("longer than 256 bytes"));
    }
    if model.chars().any(|c| c.is_whitespace() || c.is_control() || c == ',') {
        return Err(bad("contains whitespace, a comma or a control character"));
    }
    if model.starts_with('/') || model.ends_with('/') {
        return Err(bad("starts or ends with '/'"));
    }
    Ok(())
}

/// Parses capability queries given as repeated values, each possibly comma-delimited:
/// `["live-video-to-video/noop,byoc/x", "byoc/y"]`. Duplicates are removed, order is kept.
pub fn parse_capability_queries<I, S>(values: I) -> Result<Vec<CapabilityQuery>, CapabilityError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<CapabilityQuery> = Vec::new();
    for value in values {
        let value = value.as_ref();
        for part in value.split(',') {
            if part.trim().is_empty() {
                return Err(CapabilityError::Empty { input: value.to_owned() });
            }
            let q: CapabilityQuery = part.parse()?;
            if !out.contains(&q) {
                out.push(q);
            }
        }
    }
    Ok(out)
}

/// Builds the `Capabilities` a gateway sends with `GetOrchestrator` (and in `SegData`).
///
/// For each query: the capability's bit, `capacities[id] = 1` and an empty model constraint
/// under `PerCapability[id].models[model]`. The `capacities` entry matters: an orchestrator
/// prices a request by summing the model prices of the capabilities listed in `capacities`,
/// so a request without it is quoted the transcoding base price instead of the model price.
pub fn build_capabilities(queries: &[CapabilityQuery]) -> Capabilities {
    let mut caps = Capabilities::default();
    let mut per_capability: BTreeMap<u32, CapabilityConstraints> = BTreeMap::new();
    for q in queries {
        let id = q.capability.id();
        set_bit(&mut caps.bitstring, id);
        caps.capacities.insert(id, 1);
        per_capability.entry(id).or_default().models.insert(q.model.clone(), ModelConstraint::default());
    }
    if !per_capability.is_empty() {
        caps.constraints = Some(Constraints {
            min_version: String::new(),
            per_capability: per_capability.into_iter().collect(),
        });
    }
    caps
}

/// The `pipeline/model` strings a `Capabilities` message asks for, sorted and de-duplicated
/// (the form discovery endpoints take as repeated `caps=` parameters).
pub fn capabilities_to_queries(caps: &Capabilities) -> Vec<String> {
    let Some(constraints) = &caps.constraints else { return Vec::new() };
    let mut ids: Vec<&u32> = constraints.per_capability.keys().collect();
    ids.sort();
    let mut out = Vec::new();
    for id in ids {
        let Some(cap) = Capability::from_id(*id) else { continue };
        let mut models: Vec<&String> =
            constraints.per_capability[id].models.keys().filter(|m| !m.is_empty()).collect();
        models.sort();
        for m in models {
            let v = format!("{}/{}", cap.pipeline_id(), m);
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

/// Sets the bit for capability `id` (bit `id % 64` of word `id / 64`).
pub fn set_bit(bitstring: &mut Vec<u64>, id: u32) {
    let word = (id / 64) as usize;
    if bitstring.len() <= word {
        bitstring.resize(word + 1, 0);
    }
    bitstring[word] |= 1u64 << (id % 64);
}

/// Whether the bit for capability `id` is set.
pub fn has_bit(bitstring: &[u64], id: u32) -> bool {
    bitstring.get((id / 64) as usize).is_some_and(|w| w & (1u64 << (id % 64)) != 0)
}

/// A `pipeline/model` capability query that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CapabilityError {
    /// An entry between commas was empty (for example `a/b,,c/d`).
    #[error("empty capability query in {input:?}: expected pipeline/model, e.g. byoc/text-reversal")]
    Empty {
        /// The whole value the entry came from.
        input: String,
    },
    /// The entry had no `/` separating pipeline and model.
    #[error(
        "capability query {query:?} has no model: expected pipeline/model, e.g. live-video-to-video/noop"
    )]
    MissingModel {
        /// The offending entry.
        query: String,
    },
    /// The pipeline part names no known capability.
    #[error("unknown pipeline {pipeline:?} in capability query {query:?} (known: live-video-to-video, byoc, text-to-image, ...)")]
    UnknownPipeline {
        /// The pipeline part.
        pipeline: String,
        /// The offending entry.
        query: String,
    },
    /// The model part is empty or holds characters no model name may hold.
    #[error("invalid model {model:?} in capability query {query:?}: {reason}")]
    InvalidModel {
        /// The model part.
        model: String,
        /// The offending entry.
        query: String,
        /// Why it was refused.
        reason: &'static str,
    },
}

/// Why an orchestrator's capabilities do not satisfy a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incompatibility {
    /// The orchestrator advertised no capabilities at all.
    NoCapabilities,
    /// The orchestrator lacks a capability bit the request sets.
    MissingCapability(u32),
    /// The orchestrator requires a capability the request does not set.
    MandatoryNotRequested(u32),
    /// The orchestrator does not serve this model for this capability.
    MissingModel {
        /// Capability id.
        capability: u32,
        /// Model requested.
        model: String,
    },
    /// The model exists but is not warm and the request required warm.
    ModelNotWarm {
        /// Capability id.
        capability: u32,
        /// Model requested.
        model: String,
    },
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |id: u32| {
            Capability::from_id(id).map(|c| c.to_string()).unwrap_or_else(|| format!("capability {id}"))
        };
        match self {
            Incompatibility::NoCapabilities => write!(f, "orchestrator advertises no capabilities"),
            Incompatibility::MissingCapability(id) => write!(f, "orchestrator lacks {}", name(*id)),
            Incompatibility::MandatoryNotRequested(id) => write!(f, "orchestrator requires {}", name(*id)),
            Incompatibility::MissingModel { capability, model } => {
                write!(f, "orchestrator does not serve model {model:?} for {}", name(*capability))
            }
            Incompatibility::ModelNotWarm { capability, model } => {
                write!(f, "model {model:?} for {} is not warm", name(*capability))
            }
        }
    }
}

/// go-livepeer's compatibility rule: orchestrator mandatories ⊆ requested bits, requested bits ⊆
/// orchestrator bits, and every requested model exists on the orchestrator (warm if asked).
pub fn check_compatible(
    requested: &Capabilities,
    offered: Option<&Capabilities>,
) -> Result<(), Incompatibility> {
    let Some(offered) = offered else {
        return if requested.bitstring.iter().all(|w| *w == 0) && requested.constraints.is_none() {
            Ok(())
        } else {
            Err(Incompatibility::NoCapabilities)
        };
    };
    for (word_idx, word) in offered.mandatories.iter().enumerate() {
        for bit in 0..64 {
            let id = (word_idx * 64 + bit) as u32;
            if word & (1 << bit) != 0 && !has_bit(&requested.bitstring, id) {
                return Err(Incompatibility::MandatoryNotRequested(id));
            }
        }
    }
    for (word_idx, word) in requested.bitstring.iter().enumerate() {
        for bit in 0..64 {
            let id = (word_idx * 64 + bit) as u32;
            if word & (1 << bit) != 0 && !has_bit(&offered.bitstring, id) {
                return Err(Incompatibility::MissingCapability(id));
            }
        }
    }
    let Some(req_constraints) = &requested.constraints else { return Ok(()) };
    let offered_per_cap = offered.constraints.as_ref().map(|c| &c.per_capability);
    let mut ids: Vec<&u32> = req_constraints.per_capability.keys().collect();
    ids.sort();
    for id in ids {
        let Some(offered_models) = offered_per_cap.and_then(|m| m.get(id)) else {
            // Like go-livepeer: a capability the orchestrator does not constrain accepts any model,
            // but only if it has the capability at all.
            if !has_bit(&offered.bitstring, *id) {
                return Err(Incompatibility::MissingCapability(*id));
            }
            continue;
        };
        let mut models: Vec<(&String, &ModelConstraint)> =
            req_constraints.per_capability[id].models.iter().collect();
        models.sort_by(|a, b| a.0.cmp(b.0));
        for (model, want) in models {
            match offered_models.models.get(model) {
                None => return Err(Incompatibility::MissingModel { capability: *id, model: model.clone() }),
                Some(have) if want.warm && !have.warm => {
                    return Err(Incompatibility::ModelNotWarm { capability: *id, model: model.clone() })
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_ids_and_names() {
        assert_eq!(Capability::LiveVideoToVideo.id(), 35);
        assert_eq!(Capability::Byoc.id(), 37);
        assert_eq!(Capability::ALL.len(), 38);
        for (i, c) in Capability::ALL.iter().enumerate() {
            assert_eq!(c.id() as usize, i);
            assert_eq!(Capability::from_id(i as u32), Some(*c));
            assert_eq!(Capability::from_pipeline_id(c.pipeline_id()), Some(*c));
        }
        assert_eq!(Capability::from_id(38), None);
        assert_eq!(Capability::from_pipeline_id("live-video-to-video"), Some(Capability::LiveVideoToVideo));
        assert_eq!(Capability::from_pipeline_id("byoc"), Some(Capability::Byoc));
        assert_eq!(Capability::LiveVideoToVideo.to_string(), "Live video to video (35)");
        assert_eq!(Capability::SegmentAnything2.pipeline_id(), "segment-anything-2");
    }

    #[test]
    fn parses_comma_delimited_and_repeated() {
        let q = parse_capability_queries(["live-video-to-video/noop,byoc/x", "byoc/text-reversal", "byoc/x"])
            .unwrap();
        let s: Vec<String> = q.iter().map(ToString::to_string).collect();
        assert_eq!(s, ["live-video-to-video/noop", "byoc/x", "byoc/text-reversal"]);
    }

    #[test]
    fn model_may_contain_slashes() {
        let q: CapabilityQuery = "text-to-image/stabilityai/sd-turbo".parse().unwrap();
        assert_eq!(q.capability, Capability::TextToImage);
        assert_eq!(q.model, "stabilityai/sd-turbo");
    }

    #[test]
    fn bad_queries_name_the_bad_part() {
        let err = parse_capability_queries(["byoc/a,,byoc/b"]).unwrap_err();
        assert!(matches!(err, CapabilityError::Empty { .. }));
        let err = parse_capability_queries(["byoc"]).unwrap_err();
        assert_eq!(err, CapabilityError::MissingModel { query: "byoc".into() });
        let err = parse_capability_queries(["live-video/noop"]).unwrap_err();
        assert!(err.to_string().contains("\"live-video\""), "{err}");
        let err = parse_capability_queries(["byoc/"]).unwrap_err();
        assert!(matches!(err, CapabilityError::InvalidModel { .. }));
        let err = parse_capability_queries(["byoc/a b"]).unwrap_err();
        assert!(err.to_string().contains("whitespace"));
        assert!(parse_capability_queries(Vec::<String>::new()).unwrap().is_empty());
    }

    #[test]
    fn builds_capabilities_with_capacities_and_models() {
        let q = parse_capability_queries(["live-video-to-video/noop,byoc/text-reversal"]).unwrap();
        let caps = build_capabilities(&q);
        assert!(has_bit(&caps.bitstring, 35));
        assert!(has_bit(&caps.bitstring, 37));
        assert!(!has_bit(&caps.bitstring, 36));
        assert_eq!(caps.capacities.get(&35), Some(&1));
        assert_eq!(caps.capacities.get(&37), Some(&1));
        let per = &caps.constraints.as_ref().unwrap().per_capability;
        assert!(per[&37].models.contains_key("text-reversal"));
        assert_eq!(capabilities_to_queries(&caps), ["live-video-to-video/noop", "byoc/text-reversal"]);
    }

    #[test]
    fn compatibility_rules() {
        let want = build_capabilities(&[CapabilityQuery::byoc("text-reversal").unwrap()]);
        let mut offer = build_capabilities(
            &parse_capability_queries(["byoc/text-reversal,live-video-to-video/noop"]).unwrap(),
        );
        for c in DEFAULT_CAPABILITIES {
            set_bit(&mut offer.bitstring, c.id());
        }
        assert_eq!(check_compatible(&want, Some(&offer)), Ok(()));
        let other = build_capabilities(&[CapabilityQuery::byoc("other").unwrap()]);
        assert_eq!(
            check_compatible(&other, Some(&offer)),
            Err(Incompatibility::MissingModel { capability: 37, model: "other".into() })
        );
        let tts = build_capabilities(&[CapabilityQuery::new(Capability::TextToSpeech, "m").unwrap()]);
        assert_eq!(check_compatible(&tts, Some(&offer)), Err(Incompatibility::MissingCapability(36)));
        assert_eq!(check_compatible(&want, None), Err(Incompatibility::NoCapabilities));
        assert_eq!(check_compatible(&Capabilities::default(), None), Ok(()));
        let mut mandatory = offer.clone();
        set_bit(&mut mandatory.mandatories, 36);
        assert_eq!(
            check_compatible(&want, Some(&mandatory)),
            Err(Incompatibility::MandatoryNotRequested(36))
        );
    }

    #[test]
    fn warm_requirement() {
        let mut want =
            build_capabilities(&[CapabilityQuery::new(Capability::LiveVideoToVideo, "m").unwrap()]);
        let offer = want.clone();
        want.constraints
            .as_mut()
            .unwrap()
            .per_capability
            .get_mut(&35)
            .unwrap()
            .models
            .get_mut("m")
            .unwrap()
            .warm = true;
        assert!(matches!(check_compatible(&want, Some(&offer)), Err(Incompatibility::ModelNotWarm { .. })));
    }

    fn any_query() -> impl Strategy<Value = CapabilityQuery> {
        (0..Capability::ALL.len(), "[a-z0-9][a-z0-9._-]{0,20}(/[a-z0-9._-]{1,10})?")
            .prop_map(|(i, model)| CapabilityQuery { capability: Capability::ALL[i], model })
    }

    proptest! {
        #[test]
        fn queries_round_trip_through_text(qs in proptest::collection::vec(any_query(), 1..6)) {
            let joined = qs.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            let parsed = parse_capability_queries([joined.as_str()]).unwrap();
            let mut dedup = qs.clone();
            let mut seen = Vec::new();
            dedup.retain(|q| if seen.contains(q) { false } else { seen.push(q.clone()); true });
            prop_assert_eq!(parsed, dedup);
        }

        #[test]
        fn queries_round_trip_through_protobuf(qs in proptest::collection::vec(any_query(), 1..6)) {
            let caps = build_capabilities(&qs);
            let mut expected: Vec<String> = qs.iter().map(ToString::to_string).collect();
            expected.sort_by_key(|s| {
                let q: CapabilityQuery = s.parse().unwrap();
                (q.capability.id(), q.model)
            });
            expected.dedup();
            prop_assert_eq!(capabilities_to_queries(&caps), expected);
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,64}") {
            let _ = parse_capability_queries([s.as_str()]);
        }
    }
}
