//! Command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Receives Datadog-format profile uploads (ddtrace, emberscope), stores them
/// durably on local disk and serves a query API and a web UI.
///
/// Point a tracer at it with DD_TRACE_AGENT_URL=http://<listen address>
/// (or DD_AGENT_HOST/DD_TRACE_AGENT_PORT) and open the printed UI address.
#[derive(Debug, Clone, Parser)]
#[command(name = "emberscope-agent", version, about, long_about)]
pub struct Args {
    /// Address to listen on (host:port). Tracers send to port 8126 by default.
    /// A non-loopback address needs --auth-token (or --insecure).
    #[arg(long, env = "EMBERSCOPE_LISTEN", default_value = "127.0.0.1:8126")]
    pub listen: SocketAddr,

    /// Directory holding the catalog (catalog.sqlite) and raw uploads (blobs/).
    /// Created if missing. Default: $XDG_DATA_HOME/emberscope or ~/.local/share/emberscope.
    #[arg(long, env = "EMBERSCOPE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// How long profiles are kept, e.g. 7d, 36h, 90m. Older ones are deleted
    /// in the background.
    #[arg(long, env = "EMBERSCOPE_RETENTION", default_value = "7d", value_parser = parse_duration)]
    pub retention: Duration,

    /// Disk cap for the data directory, e.g. 10GiB, 500MB. When exceeded the
    /// oldest profiles are deleted in the background. Default: no cap.
    #[arg(long, env = "EMBERSCOPE_MAX_DISK", value_parser = parse_size)]
    pub max_disk: Option<u64>,

    /// Token required on intake and API requests, as `Authorization: Bearer <token>`,
    /// `DD-API-KEY: <token>` or HTTP basic auth with the token as password.
    /// The UI asks for it once and keeps it in the browser.
    #[arg(long, env = "EMBERSCOPE_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// Allow listening on a non-loopback address without --auth-token.
    /// Anyone who can reach the port can then upload and read profiles.
    #[arg(long)]
    pub insecure: bool,

    /// Maximum request body size, e.g. 64MiB.
    #[arg(long, default_value = "64MiB", value_parser = parse_size)]
    pub max_body: u64,

    /// Maximum decompressed size of one upload (all attachments together), e.g. 256MiB.
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    pub max_decompressed: u64,

    /// Maximum number of multipart parts in one upload.
    #[arg(long, default_value_t = 32)]
    pub max_parts: usize,

    /// Log filter (tracing EnvFilter syntax), e.g. info, debug, emberscope_agent=debug.
    #[arg(long, env = "EMBERSCOPE_LOG", default_value = "info")]
    pub log: String,
}

impl Args {
    pub fn data_dir(&self) -> PathBuf {
        if let Some(d) = &self.data_dir {
            return d.clone();
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
            return PathBuf::from(x).join("emberscope");
        }
        if let Some(h) = std::env::var_os("HOME") {
            return PathBuf::from(h).join(".local/share/emberscope");
        }
        PathBuf::from("emberscope-data")
    }

    /// Refuses a non-loopback listen address without a token unless --insecure.
    pub fn check_exposure(&self) -> Result<(), String> {
        if !self.listen.ip().is_loopback() && self.auth_token.is_none() && !self.insecure {
            return Err(format!(
                "refusing to listen on non-loopback address {} without --auth-token; \
                 pass --auth-token <token> or --insecure",
                self.listen
            ));
        }
        if let Some(t) = &self.auth_token {
            if t.is_empty() {
                return Err("--auth-token must not be empty".into());
            }
        }
        Ok(())
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (examples: 500MB, 10GiB, 1048576)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "ki" | "kib" => 1024.0,
        "mi" | "mib" => 1024.0 * 1024.0,
        "gi" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "ti" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("invalid size unit {other:?} in {s:?}")),
    };
    let v = n * mult;
    if !v.is_finite() || v < 0.0 || v > u64::MAX as f64 {
        return Err(format!("size {s:?} out of range"));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("10GB").unwrap(), 10_000_000_000);
        assert_eq!(parse_size("123").unwrap(), 123);
        assert!(parse_size("12XB").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("60").unwrap(), Duration::from_secs(60));
    }

    #[test]
    fn exposure() {
        let mut a = Args::parse_from(["x", "--listen", "0.0.0.0:8126"]);
        assert!(a.check_exposure().is_err());
        a.insecure = true;
        assert!(a.check_exposure().is_ok());
        let b = Args::parse_from(["x", "--listen", "0.0.0.0:1", "--auth-token", "t"]);
        assert!(b.check_exposure().is_ok());
        let c = Args::parse_from(["x"]);
        assert!(c.check_exposure().is_ok());
    }
}
