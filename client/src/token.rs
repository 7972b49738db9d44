//! The bearer token a client or a server is given: `--token` (or `$MODSYNC_TOKEN`) or the
//! contents of `--token-file`, which every command that takes a token reads the same way.

use std::path::Path;

use anyhow::{Result, anyhow, bail};

/// The token in `--token-file` if given, else `--token` (or `$MODSYNC_TOKEN`). Both flags
/// together are an error; the file wins over the variable (a flag overrides the environment).
pub fn token_from(token: Option<String>, file: Option<&Path>) -> Result<Option<String>> {
    match (file, token) {
        (Some(_), Some(t))
            if std::env::var("MODSYNC_TOKEN").ok().as_deref() != Some(t.as_str()) =>
        {
            bail!("--token and --token-file both given: give one of them")
        }
        (Some(path), _) => read_token_file(path).map(Some),
        (None, token) => Ok(token),
    }
}

/// The token in `path` (`--token-file`): its contents without surrounding whitespace (the
/// trailing newline of `openssl rand -hex 32 > FILE`). An unreadable, empty or blank file is an
/// error naming the flag; a file other local users can read gets a warning on stderr.
pub fn read_token_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow!(
            "invalid --token-file {}: cannot read it: {e}",
            path.display()
        )
    })?;
    let token = text.trim();
    if token.is_empty() {
        bail!(
            "invalid --token-file {}: the file is empty or only whitespace (it should hold the \
             token, e.g. from openssl rand -hex 32)",
            path.display()
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o004 != 0
        {
            eprintln!(
                "warning: --token-file {} is readable by every local user (mode {:o}): chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_are_trimmed_and_empty_ones_refused_naming_the_flag() {
        let dir = std::env::temp_dir().join(format!("modsync-token-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        std::fs::write(&good, "0123456789abcdef0123\n").unwrap();
        assert_eq!(read_token_file(&good).unwrap(), "0123456789abcdef0123");
        assert_eq!(
            token_from(None, Some(&good)).unwrap().as_deref(),
            Some("0123456789abcdef0123")
        );
        assert_eq!(
            token_from(Some("x".into()), None).unwrap().as_deref(),
            Some("x")
        );
        if std::env::var_os("MODSYNC_TOKEN").is_none() {
            let e = token_from(Some("x".into()), Some(&good))
                .unwrap_err()
                .to_string();
            assert!(e.contains("--token-file"), "{e}");
        }
        for (name, text) in [("empty", ""), ("blank", " \n\t\n")] {
            let f = dir.join(name);
            std::fs::write(&f, text).unwrap();
            let e = read_token_file(&f).unwrap_err().to_string();
            assert!(e.contains("--token-file") && e.contains("empty"), "{e}");
        }
        let e = read_token_file(&dir.join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("--token-file") && e.contains("missing"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
