//! `emberscope-agent`: receives Datadog-format profile uploads, stores them and serves the UI.
fn main() {}
