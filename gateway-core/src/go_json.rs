//! Decoding JSON the way go-livepeer's `encoding/json` does.
//!
//! Go fills a struct from JSON leniently: a missing field keeps its zero value, an unknown field
//! is ignored, and `null` leaves the zero value in place. Peers that are not ours (the official
//! Python SDK, go gateways) rely on this: the Python SDK leaves `parameters` out of a BYOC job
//! when it has none. Every go-shaped type in this crate therefore derives `Default`, carries
//! `#[serde(default)]` and reads its fields through [`null_as_default`], so our client and our
//! double accept exactly what go accepts. Checks go makes *after* decoding (a zero timeout, a
//! `request` that is not JSON) stay where go makes them.
//!
//! ```
//! use livepeer_gateway_core::jobs::JobRequest;
//!
//! let job: JobRequest =
//!     serde_json::from_str(r#"{"id":"j","capability":"c","parameters":null,"extra":1}"#).unwrap();
//! assert_eq!(job.parameters, "");
//! assert_eq!(job.timeout_seconds, 0);
//! ```

use serde::{Deserialize, Deserializer};

/// `deserialize_with` for a field that takes its zero value on `null`, as go does.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Decodes a go-shaped struct from JSON text as go's `json.Unmarshal` would: an object fills
/// it, `null` leaves it zero, anything else (an array, a number) is an error. (serde alone would
/// also accept a struct written as an array.)
pub fn from_slice<T>(bytes: &[u8]) -> Result<T, serde_json::Error>
where
    T: serde::de::DeserializeOwned + Default,
{
    match serde_json::from_slice::<serde_json::Value>(bytes)? {
        v @ serde_json::Value::Object(_) => serde_json::from_value(v),
        serde_json::Value::Null => Ok(T::default()),
        other => Err(serde::de::Error::invalid_type(unexpected(&other), &"a JSON object")),
    }
}

fn unexpected(value: &serde_json::Value) -> serde::de::Unexpected<'_> {
    use serde::de::Unexpected;
    match value {
        serde_json::Value::Bool(b) => Unexpected::Bool(*b),
        serde_json::Value::Number(_) => Unexpected::Other("a number"),
        serde_json::Value::String(s) => Unexpected::Str(s),
        serde_json::Value::Array(_) => Unexpected::Seq,
        _ => Unexpected::Other("a value"),
    }
}

/// `skip_serializing_if` for go's `omitempty` on integers.
pub fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    struct Shape {
        #[serde(deserialize_with = "null_as_default")]
        name: String,
        #[serde(deserialize_with = "null_as_default", skip_serializing_if = "is_zero")]
        count: i64,
        #[serde(deserialize_with = "null_as_default")]
        list: Vec<String>,
    }

    #[test]
    fn missing_null_and_unknown_fields_decode_as_go_does() {
        let s: Shape = serde_json::from_str(r#"{"name":null,"unknown":[1,2],"list":null}"#).unwrap();
        assert_eq!(s, Shape::default());
        let s: Shape = serde_json::from_str("{}").unwrap();
        assert_eq!(s, Shape::default());
        // A wrong type is still an error, as in go.
        assert!(serde_json::from_str::<Shape>(r#"{"count":"3"}"#).is_err());
        assert_eq!(serde_json::to_string(&Shape::default()).unwrap(), r#"{"name":"","list":[]}"#);
        assert_eq!(from_slice::<Shape>(b"null").unwrap(), Shape::default());
        assert!(from_slice::<Shape>(b"[]").is_err());
        assert!(from_slice::<Shape>(b"3").is_err());
        assert_eq!(from_slice::<Shape>(br#"{"count":2}"#).unwrap().count, 2);
    }
}
