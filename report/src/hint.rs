//! What to type next: how to read a store once the process that wrote it is gone.

use std::path::Path;

/// How to read the store this run leaves behind, without a coordinator.
pub fn read_store(db: &Path, sweep: &str) -> String {
    let db = shell_word(&db.display().to_string());
    format!(
        "query with: modsync sql --db {db} \"SELECT * FROM curves\"\n\
         \x20         modsync status --db {db} {sweep}\n\
         \x20         modsync curves --db {db} {sweep}\n\
         \x20         modsync dashboard --db {db}"
    )
}

/// `s` quoted for a POSIX shell when it needs it.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_hint_names_the_store_quoted_for_a_shell() {
        let hint = read_store(Path::new(".modsync/quick/sweep.db"), "quick");
        assert!(
            hint.starts_with(
                "query with: modsync sql --db .modsync/quick/sweep.db \"SELECT * FROM curves\"\n"
            ),
            "{hint}"
        );
        assert!(
            hint.contains("modsync status --db .modsync/quick/sweep.db quick"),
            "{hint}"
        );
        assert_eq!(shell_word("my runs/it's.db"), "'my runs/it'\\''s.db'");
    }
}
