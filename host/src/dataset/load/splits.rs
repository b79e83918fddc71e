//! Which data files make up a split, resolved from file names as `datasets` does for plain data
//! repos and folders (no loading script, no `configs:` in the README), in this order:
//! 1. sharded files `data/{split}-NNNNN-of-NNNNN*.*`: every split name found;
//! 2. a folder named after a split keyword (`train/…`, `my-train-set/…`, `dev/…`);
//! 3. a file name holding a split keyword (`train.jsonl`, `wiki_test-01.csv`);
//! 4. otherwise every file is the `train` split.
//!
//! Keywords (`datasets`' `SPLIT_KEYWORDS`): train = train, training; validation = validation,
//! valid, dev, val; test = test, testing, eval, evaluation. A keyword counts only at the start of
//! a name or after one of `-._ 0-9`, and only when followed by the end of a folder name or by one
//! of those characters (so `validation` is not `val`, and `contest.csv` is not `test`).

/// The default splits and their keywords.
const KEYWORDS: [(&str, &[&str]); 3] = [
    ("train", &["train", "training"]),
    ("validation", &["validation", "valid", "dev", "val"]),
    ("test", &["test", "testing", "eval", "evaluation"]),
];

/// The characters that may surround a keyword (`datasets`' `NON_WORDS_CHARS`).
fn is_sep(c: char) -> bool {
    matches!(c, '-' | '.' | '_' | ' ' | '0'..='9')
}

/// Split name → files (relative paths with `/`), in the order the splits were found; each file
/// list sorted.
pub type SplitMap = Vec<(String, Vec<String>)>;

/// Whether a path component is hidden (`.x`) or a special folder (`__x`); `datasets` skips both.
pub fn is_hidden(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.iter().any(|p| p.starts_with('.'))
        || parts[..parts.len().saturating_sub(1)]
            .iter()
            .any(|p| p.starts_with("__"))
}

/// Groups `files` (relative to the dataset root, `/`-separated) into splits.
pub fn resolve(files: &[String]) -> SplitMap {
    let mut files: Vec<String> = files.iter().filter(|f| !is_hidden(f)).cloned().collect();
    files.sort();
    files.dedup();
    let mut sharded = SplitMap::new();
    for f in &files {
        if let Some(split) = sharded_split(f) {
            add(&mut sharded, split, f);
        }
    }
    if !sharded.is_empty() {
        return sharded;
    }
    for in_dir in [true, false] {
        let mut found = SplitMap::new();
        for (split, keywords) in KEYWORDS {
            for f in &files {
                if keywords.iter().any(|k| has_keyword(f, k, in_dir)) {
                    add(&mut found, split, f);
                }
            }
        }
        if !found.is_empty() {
            return found;
        }
    }
    if files.is_empty() {
        return SplitMap::new();
    }
    vec![("train".to_string(), files)]
}

fn add(map: &mut SplitMap, split: &str, file: &str) {
    match map.iter_mut().find(|(s, _)| s == split) {
        Some((_, v)) => v.push(file.to_string()),
        None => map.push((split.to_string(), vec![file.to_string()])),
    }
}

/// The split of `data/{split}-NNNNN-of-NNNNN*.*`, if `file` has that form.
fn sharded_split(file: &str) -> Option<&str> {
    let rest = file.strip_prefix("data/")?;
    if rest.contains('/') {
        return None;
    }
    let b = rest.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    // "-NNNNN-of-NNNNN" is 15 bytes; the split name before it is not empty.
    (1..b.len().saturating_sub(14)).find_map(|i| {
        let m = &b[i..i + 15];
        let shard = m[0] == b'-' && digits(&m[1..6]) && &m[6..10] == b"-of-" && digits(&m[10..15]);
        (shard && rest[i + 15..].contains('.')).then(|| &rest[..i])
    })
}

/// Whether `keyword` names a folder of `file` (`in_dir`) or its file name.
fn has_keyword(file: &str, keyword: &str, in_dir: bool) -> bool {
    let parts: Vec<&str> = file.split('/').collect();
    let (dirs, name) = parts.split_at(parts.len() - 1);
    if in_dir {
        dirs.iter().any(|d| keyword_in(d, keyword, false))
    } else {
        name.iter().any(|n| keyword_in(n, keyword, true))
    }
}

/// Whether `name` holds `keyword` after its start or a separator, and before its end (folders
/// only) or a separator.
fn keyword_in(name: &str, keyword: &str, need_sep_after: bool) -> bool {
    name.match_indices(keyword).any(|(i, _)| {
        let before = name[..i].chars().next_back().is_none_or(is_sep);
        let after = name[i + keyword.len()..].chars().next();
        before
            && match after {
                None => !need_sep_after,
                Some(c) => is_sep(c),
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splits(files: &[&str]) -> Vec<(String, Vec<String>)> {
        resolve(&files.iter().map(|f| f.to_string()).collect::<Vec<_>>())
    }

    fn s(split: &str, files: &[&str]) -> (String, Vec<String>) {
        (
            split.to_string(),
            files.iter().map(|f| f.to_string()).collect(),
        )
    }

    #[test]
    fn sharded_files_name_any_split() {
        let got = splits(&[
            "data/train-00000-of-00002.parquet",
            "data/train-00001-of-00002.parquet",
            "data/my_split-00000-of-00001.parquet",
            "test.jsonl",
        ]);
        assert_eq!(
            got,
            vec![
                s("my_split", &["data/my_split-00000-of-00001.parquet"]),
                s(
                    "train",
                    &[
                        "data/train-00000-of-00002.parquet",
                        "data/train-00001-of-00002.parquet"
                    ]
                ),
            ]
        );
    }

    #[test]
    fn folders_before_file_names() {
        let got = splits(&[
            "train/a.csv",
            "dev/b.csv",
            "test.csv",
            "x/my-test-set/c.csv",
        ]);
        assert_eq!(
            got,
            vec![
                s("train", &["train/a.csv"]),
                s("validation", &["dev/b.csv"]),
                s("test", &["x/my-test-set/c.csv"]),
            ]
        );
    }

    #[test]
    fn file_names_with_keywords() {
        let got = splits(&[
            "wiki_train.jsonl",
            "wiki_validation.jsonl",
            "contest.jsonl",
            "test-01.jsonl",
            "evaluation.jsonl",
        ]);
        assert_eq!(
            got,
            vec![
                s("train", &["wiki_train.jsonl"]),
                s("validation", &["wiki_validation.jsonl"]),
                s("test", &["evaluation.jsonl", "test-01.jsonl"]),
            ]
        );
    }

    #[test]
    fn everything_else_is_train_and_hidden_files_are_skipped() {
        let got = splits(&[
            "b.parquet",
            "a.parquet",
            ".hidden/x.parquet",
            "__pycache__/y.parquet",
        ]);
        assert_eq!(got, vec![s("train", &["a.parquet", "b.parquet"])]);
        assert!(splits(&[]).is_empty());
    }
}
