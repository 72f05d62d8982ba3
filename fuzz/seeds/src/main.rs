//! Writes the seed corpus of every fuzz target (see fuzz/README.md): inputs shaped like what
//! the gateway really receives, from which the fuzzers mutate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use bytes::Bytes;
use gateway_core::capabilities::{build_capabilities, parse_capability_queries, Capability};
use gateway_core::lp_rpc::capabilities::capability_constraints::ModelConstraint;
use gateway_core::lp_rpc::capabilities::{CapabilityConstraints, Constraints};
use gateway_core::lp_rpc::{
    AuthToken, OrchestratorInfo, PaymentResult, PriceInfo, TicketExpirationParams, TicketParams,
};
use gateway_media::encoder::{Codec, EncodedPacket};
use gateway_media::segmenter::{SegmentEvent, Segmenter, SegmenterConfig};
use prost::Message;

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(format!("seed-{name}")), bytes).unwrap();
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn tokens(dir: &Path) {
    let docs = [
        (
            "full",
            r#"{"orchestrators":["https://orch-1.example:8935","orch-2.example:8935"],"signer":"https://signer.example/api","signer_headers":{"Authorization":"Bearer sk_live_abc123"},"discovery":"https://discovery.example/orchestrators","discovery_headers":{"X-Api-Key":"k-42"}}"#,
        ),
        (
            "signer-only",
            r#"{"signer":"https://signer.livepeer.example","signer_headers":{"Authorization":"Bearer 0123456789abcdef"}}"#,
        ),
        ("orchestrators", r#"{"orchestrators":[" 127.0.0.1:8935 ","https://b:2"]}"#),
        (
            "nulls",
            r#"{"orchestrators":null,"signer":null,"discovery":"https://d","extra":{"nested":[1,2.5,true]}}"#,
        ),
        ("empty-object", "{}"),
        ("array", "[1]"),
        ("wrong-types", r#"{"orchestrators":"a,b","signer":5,"signer_headers":{"Authorization":1}}"#),
        ("empty-entry", r#"{"orchestrators":["a",""]}"#),
        (
            "unicode",
            r#"{"signer":"https://sïgner.example/é?key=1#x","discovery_headers":{"ключ":"значение"}}"#,
        ),
    ];
    for (name, doc) in docs {
        write(dir, "token", name, b64(doc).as_bytes());
    }
    write(dir, "token", "padded", format!("  {}\n", b64(docs[1].1)).as_bytes());
    write(dir, "token", "not-base64", b"%%%not base64%%%");
    write(dir, "token", "not-json", b64("nope").as_bytes());
    write(dir, "token", "url-safe", b"eyJzaWduZXIiOiJodHRwczovL3MifQ_-");
}

fn queries(dir: &Path) {
    let seeds = [
        ("byoc", "byoc/text-reversal"),
        ("two", "live-video-to-video/noop,byoc/text-reversal"),
        ("lines", "live-video-to-video/streamdiffusion\nbyoc/x\nbyoc/x"),
        ("hf-model", "text-to-image/stabilityai/sd-turbo"),
        ("upper", "LIVE-VIDEO-TO-VIDEO/noop"),
        ("empty-entry", "a/b,,c/d"),
        ("no-model", "byoc"),
        ("spaces", " byoc/a , byoc/b "),
        ("bad-model", "byoc/has space"),
    ];
    for (name, q) in seeds {
        write(dir, "capability_queries", name, q.as_bytes());
    }
    let all: Vec<String> =
        Capability::ALL.iter().map(|c| format!("{}/m-{}", c.pipeline_id(), c.id())).collect();
    write(dir, "capability_queries", "every-pipeline", all.join(",").as_bytes());
}

fn trickle(dir: &Path) {
    let seeds = [
        ("segment", "Lp-Trickle-Seq: 3\nLp-Trickle-Latest: 4\n:status 200\n:requested 3\n:path /ai/trickle/abc123-out/3\n:channel abc123-out\n:body 4"),
        ("closed", "Lp-Trickle-Closed: terminated\n:status 200\n:requested -2\n:body Entry not found"),
        ("ahead", "Lp-Trickle-Latest: 7\n:status 470\n:requested 9\n:body Entry not found"),
        ("behind", "lp-trickle-latest: 12\n:status 470\n:requested 2"),
        ("next", ":status 200\n:requested -1\n:path /ai/trickle/stream/next\n:body 17\n"),
        ("not-found", ":status 404\n:requested 0\n:path /ai/trickle/gone\n:channel gone"),
        ("bad-numbers", "Lp-Trickle-Seq: -3\nLp-Trickle-Latest: 9999999999999999999999\n:status 500\n:body oops"),
        ("post", "Lp-Trickle-Seq: 0\n:status 201\n:requested 0\n:channel my_stream.v1~x"),
        ("seqspec", "-2"),
    ];
    for (name, s) in seeds {
        write(dir, "trickle_headers", name, s.as_bytes());
    }
}

fn signer(dir: &Path) {
    let sig = format!("0x{}", "ab".repeat(65));
    let seeds = [
        ("identity", format!(r#"{{"address":"0x2DE63Cf6A648fcfB3968A1B375BF6199f357836f","signature":"{sig}"}}"#)),
        ("identity-short-sig", r#"{"address":"0x2DE63Cf6A648fcfB3968A1B375BF6199f357836f","signature":"0x1234"}"#.into()),
        ("payment", r#"{"payment":"CgQKAggB","segCreds":"EgQKAggC","state":{"State":"eyJzIjoxfQ==","Sig":"c2ln"}}"#.into()),
        ("payment-float-state", r#"{"payment":"","state":{"n":1.2345678901234567e300,"a":[null,false,-0.0]}}"#.into()),
        ("byoc-signature", format!(r#"{{"sender":"0x2DE63Cf6A648fcfB3968A1B375BF6199f357836f","signature":"{sig}"}}"#)),
        ("byoc-request", r#"{"id":"byoc-158f50f85ccd","capability":"text-reversal","request":"{\"run\":\"x\"}","parameters":"{}","timeout_seconds":30}"#.into()),
        ("payment-request", r#"{"orchestrator":"CgR4eXo=","ManifestID":"abcd1234","type":"lv2v","maxPrice":{"price":1.5,"currency":"wei","unit":"seconds"},"inPixels":921600,"preloadSeconds":60,"RequestID":"r-1"}"#.into()),
        ("discovery", r#"[{"address":"https://o1.example:8935","score":0.9,"capabilities":["live-video-to-video/noop"]},{"address":""},{"score":1},"junk",{"address":"o2:8935"}]"#.into()),
        ("error", r#"{"error":{"message":"insufficient balance for ticket"}}"#.into()),
        ("not-json", "<html>502 Bad Gateway</html>".into()),
    ];
    for (name, s) in seeds {
        write(dir, "signer_json", name, s.as_bytes());
    }
}

/// An `OrchestratorInfo` shaped like a real on-chain orchestrator's answer.
fn real_shaped_info() -> OrchestratorInfo {
    let mut models = HashMap::new();
    models.insert(
        "streamdiffusion".to_owned(),
        ModelConstraint { warm: true, capacity: 2, runner_version: "0.14.1".into(), capacity_in_use: 1 },
    );
    let mut per = HashMap::new();
    per.insert(35, CapabilityConstraints { models });
    OrchestratorInfo {
        transcoder: "https://orch.example:8935".into(),
        ticket_params: Some(TicketParams {
            recipient: vec![0x11; 20],
            face_value: 1_000_000_000_000_000u64.to_be_bytes().to_vec(),
            win_prob: vec![0xff; 32],
            recipient_rand_hash: vec![0x22; 32],
            seed: vec![0x33; 16],
            expiration_block: 123_456_789u64.to_be_bytes().to_vec(),
            expiration_params: Some(TicketExpirationParams {
                creation_round: 4000,
                creation_round_block_hash: vec![0x44; 32],
            }),
        }),
        price_info: Some(PriceInfo {
            price_per_unit: 1200,
            pixels_per_unit: 1,
            capability: 0,
            constraint: String::new(),
        }),
        address: vec![0x55; 20],
        capabilities: Some(gateway_core::lp_rpc::Capabilities {
            bitstring: vec![0x0000_0028_0400_5fff],
            mandatories: vec![],
            capacities: [(35, 2)].into_iter().collect(),
            version: "0.9.1".into(),
            constraints: Some(Constraints { min_version: String::new(), per_capability: per }),
        }),
        auth_token: Some(AuthToken {
            token: vec![0x66; 32],
            session_id: "1a2b3c4d".into(),
            expiration: 1_800_000_000,
        }),
        hardware: vec![],
        storage: vec![],
        capabilities_prices: vec![PriceInfo {
            price_per_unit: 2_500,
            pixels_per_unit: 1,
            capability: 35,
            constraint: "streamdiffusion".into(),
        }],
        nodes: vec!["https://node2.example:8935".into()],
    }
}

fn orchestrator_info(dir: &Path) {
    let real = real_shaped_info();
    let local = OrchestratorInfo {
        transcoder: "https://127.0.0.1:8935".into(),
        auth_token: Some(AuthToken { token: vec![1], session_id: "s".into(), expiration: 1 }),
        price_info: Some(PriceInfo { price_per_unit: 100, pixels_per_unit: 1, ..Default::default() }),
        ticket_params: Some(TicketParams::default()),
        capabilities: Some(build_capabilities(
            &parse_capability_queries(["live-video-to-video/noop,byoc/text-reversal"]).unwrap(),
        )),
        ..Default::default()
    };
    let hostile = OrchestratorInfo {
        transcoder: " ".into(),
        price_info: Some(PriceInfo { price_per_unit: -5, pixels_per_unit: -1, ..Default::default() }),
        ticket_params: Some(TicketParams {
            face_value: vec![0xff; 40],
            win_prob: vec![],
            ..Default::default()
        }),
        ..real.clone()
    };
    write(dir, "orchestrator_info", "real-shaped", &real.encode_to_vec());
    write(dir, "orchestrator_info", "local-network", &local.encode_to_vec());
    write(dir, "orchestrator_info", "hostile-price", &hostile.encode_to_vec());
    write(
        dir,
        "orchestrator_info",
        "offchain",
        &OrchestratorInfo { transcoder: "https://o:1".into(), ..Default::default() }.encode_to_vec(),
    );
    write(dir, "orchestrator_info", "payment-result", &PaymentResult { info: Some(local) }.encode_to_vec());
}

/// A small stream from our muxer: fake H.264 access units of sizes that hit the packing edges,
/// one too large for PES_packet_length, DTS apart from PTS on some.
fn our_ts(frames: usize, sizes: &[usize]) -> Vec<u8> {
    let mut segmenter = Segmenter::mpegts(SegmenterConfig::default());
    let mut ts = Vec::new();
    for i in 0..frames {
        let keyframe = i % 4 == 0;
        let mut data = vec![0, 0, 0, 1, if keyframe { 0x65 } else { 0x41 }];
        data.extend((0..sizes[i % sizes.len()]).map(|j| (j * 31 + i) as u8));
        let pts = 126_000 + i as i64 * 3000;
        let dts = if i % 3 == 2 { pts - 1500 } else { pts };
        let p = EncodedPacket { codec: Codec::H264, data: Bytes::from(data), pts, dts, keyframe };
        for ev in segmenter.push(&p).unwrap() {
            if let SegmentEvent::Chunk(b) = ev {
                ts.extend_from_slice(&b);
            }
        }
    }
    ts
}

fn ts(dir: &Path) {
    let with_seed = |seed: u8, body: &[u8]| [&[seed][..], body].concat();
    write(dir, "ts_demux", "ours-small", &with_seed(7, &our_ts(6, &[150, 330, 5, 1200])));
    write(dir, "ts_demux", "ours-unbounded-pes", &with_seed(200, &our_ts(2, &[66_000, 10])[..12_000]));
    let ffmpeg = std::env::temp_dir().join(format!("fuzz-seed-{}.ts", std::process::id()));
    let ok = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=10"])
        .args(["-t", "0.4", "-c:v", "libx264", "-g", "2", "-pix_fmt", "yuv420p", "-f", "mpegts"])
        .arg(&ffmpeg)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let bytes = std::fs::read(&ffmpeg).unwrap();
        let _ = std::fs::remove_file(&ffmpeg);
        write(dir, "ts_demux", "ffmpeg-x264", &with_seed(1, &bytes));
    } else {
        eprintln!("note: ffmpeg not available; no ffmpeg TS seed");
    }
}

fn main() {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus"));
    tokens(&dir);
    queries(&dir);
    trickle(&dir);
    signer(&dir);
    orchestrator_info(&dir);
    ts(&dir);
    println!("seeds written under {}", dir.display());
}
