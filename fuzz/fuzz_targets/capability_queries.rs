//! `pipeline/model` capability queries: lines of text as repeated, comma-delimited values.
//! A parse that succeeds must survive every step after it: each query displays and parses back
//! to itself, `build_capabilities` sets each query's bit, capacity and model,
//! `capabilities_to_queries` gives back the same set of queries, the capabilities satisfy
//! themselves, and they survive a protobuf round trip.
#![no_main]

use std::collections::BTreeSet;

use gateway_core::capabilities::{
    build_capabilities, capabilities_to_queries, check_compatible, has_bit, parse_capability_queries,
    CapabilityQuery,
};
use gateway_core::lp_rpc::Capabilities;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let values: Vec<&str> = text.split('\n').collect();
    let queries = match parse_capability_queries(&values) {
        Ok(q) => q,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let distinct: BTreeSet<&CapabilityQuery> = queries.iter().collect();
    assert_eq!(distinct.len(), queries.len(), "duplicates are removed");
    for q in &queries {
        let back: CapabilityQuery = q.to_string().parse().expect("a displayed query parses");
        assert_eq!(&back, q);
    }

    let caps = build_capabilities(&queries);
    for q in &queries {
        let id = q.capability.id();
        assert!(has_bit(&caps.bitstring, id));
        assert_eq!(caps.capacities.get(&id), Some(&1));
        let models = &caps.constraints.as_ref().expect("constraints").per_capability[&id].models;
        assert!(models.contains_key(&q.model));
    }

    let strings = capabilities_to_queries(&caps);
    let reparsed = parse_capability_queries(&strings).expect("queries built from capabilities parse");
    let before: BTreeSet<CapabilityQuery> = queries.iter().cloned().collect();
    let after: BTreeSet<CapabilityQuery> = reparsed.into_iter().collect();
    assert_eq!(before, after, "capabilities_to_queries round trip");

    assert_eq!(check_compatible(&caps, Some(&caps)), Ok(()));
    let decoded = Capabilities::decode(caps.encode_to_vec().as_slice()).expect("protobuf round trip");
    assert_eq!(decoded, caps);
});
