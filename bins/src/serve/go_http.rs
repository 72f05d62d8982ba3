//! go's `net/http` habits that the node answers with, so go's clients see what they expect:
//! `http.Error`'s plain-text answers, and `FormValue`'s reading of a request's form.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_core::gateway_api::live::{multipart_boundary, multipart_fields};

/// go's `http.Error`: plain text and a newline.
pub fn text(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, [("content-type", "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
}

/// A callback's form values as go's `FormValue` reads them: the body's (multipart or
/// urlencoded) first, then the URL's; `Err` says what is malformed (a 400).
pub fn form_values(
    headers: &HeaderMap,
    body: &[u8],
    mut url_values: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, &'static str> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut form: Vec<(String, String)> = if let Some(boundary) = multipart_boundary(content_type) {
        match multipart_fields(body, boundary) {
            Some(fields) => fields,
            None => return Err("malformed multipart form"),
        }
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        url::form_urlencoded::parse(body).into_owned().collect()
    } else {
        Vec::new()
    };
    form.append(&mut url_values);
    Ok(form)
}
