//! Text made safe for HTML.

/// `s` with `&`, `<`, `>` and `"` escaped, for element text and quoted
/// attribute values.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
