//! Unified diffs of file contents for listings and reports: redacted when
//! sensitive, summarised when binary, capped when long.

use similar::TextDiff;

/// Diffs longer than this many lines are cut, with a note of how many more.
const MAX_LINES: usize = 200;

pub fn unified(path: &str, old: &[u8], new: &[u8], sensitive: bool) -> String {
    if sensitive {
        return format!(
            "content of {path} changed (sensitive: diff hidden; {} -> {} bytes)\n",
            old.len(),
            new.len()
        );
    }
    let (Ok(old_text), Ok(new_text)) = (std::str::from_utf8(old), std::str::from_utf8(new)) else {
        return binary(path, old, new);
    };
    if old_text.contains('\0') || new_text.contains('\0') {
        return binary(path, old, new);
    }
    let diff = TextDiff::from_lines(old_text, new_text);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(path, path)
        .to_string();
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= MAX_LINES {
        return text;
    }
    let mut out = lines[..MAX_LINES].join("\n");
    out.push_str(&format!(
        "\n... {} more lines of diff\n",
        lines.len() - MAX_LINES
    ));
    out
}

fn binary(path: &str, old: &[u8], new: &[u8]) -> String {
    format!(
        "binary content of {path} changed (sha256 {} -> {}, {} -> {} bytes)\n",
        short_digest(old),
        short_digest(new),
        old.len(),
        new.len()
    )
}

fn short_digest(bytes: &[u8]) -> String {
    let mut hex = crate::resource::sha256_hex(bytes);
    hex.truncate(12);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_text_and_hides_secrets() {
        let d = unified("/etc/motd", b"a\nb\n", b"a\nc\n", false);
        assert!(d.contains("-b\n+c\n"), "{d}");
        let s = unified("/etc/key", b"old-secret\n", b"new-secret\n", true);
        assert!(!s.contains("secret\n"), "{s}");
        let b = unified("/bin/x", b"\0\x01", b"\0\x02", false);
        assert!(b.starts_with("binary content"), "{b}");
    }
}
