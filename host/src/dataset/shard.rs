//! `--shard I/N`: which examples one process of a job array attributes (`index % N == I`).

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A bad `--shard` value or SLURM environment (one line each).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ShardError {
    /// Not `I/N` with two numbers.
    #[error("--shard '{0}' is not I/N (0-based shard I of N, e.g. --shard 0/4)")]
    Syntax(String),
    /// `N` is 0 or `I` is not below `N`.
    #[error("--shard '{0}' is out of range: I must be below N (0-based: 0/{1} … {2}/{1})")]
    Range(String, usize, usize),
    /// A SLURM variable is not a number or the task id is out of range.
    #[error("{0}: set SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT of a job array (--array=0-N) or pass --shard I/N")]
    Slurm(String),
}

/// Shard `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, below `count`.
    pub index: usize,
    /// The number of shards.
    pub count: usize,
}

impl Shard {
    /// Every example in one shard.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the example with dataset index `i` belongs to this shard.
    pub fn contains(&self, i: usize) -> bool {
        i % self.count == self.index
    }

    /// The shard of a SLURM job array task: `SLURM_ARRAY_TASK_ID` (minus `SLURM_ARRAY_TASK_MIN`
    /// when set) of `SLURM_ARRAY_TASK_COUNT`; `None` outside a job array.
    pub fn from_slurm(env: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, ShardError> {
        let (Some(id), Some(count)) = (env("SLURM_ARRAY_TASK_ID"), env("SLURM_ARRAY_TASK_COUNT"))
        else {
            return Ok(None);
        };
        let num = |name: &str, v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| ShardError::Slurm(format!("{name}='{v}' is not a number")))
        };
        let id = num("SLURM_ARRAY_TASK_ID", &id)?;
        let count = num("SLURM_ARRAY_TASK_COUNT", &count)?;
        let min = match env("SLURM_ARRAY_TASK_MIN") {
            Some(m) => num("SLURM_ARRAY_TASK_MIN", &m)?,
            None => 0,
        };
        match id.checked_sub(min) {
            Some(index) if index < count => Ok(Some(Shard { index, count })),
            _ => Err(ShardError::Slurm(format!(
                "SLURM_ARRAY_TASK_ID={id} (minimum {min}) is not one of {count} tasks"
            ))),
        }
    }

    /// `--shard` if given, else the SLURM job array task, else [`Shard::ALL`].
    pub fn resolve(
        flag: Option<&str>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Shard, ShardError> {
        match flag {
            Some(s) => s.parse(),
            None => Ok(Self::from_slurm(env)?.unwrap_or(Self::ALL)),
        }
    }
}

impl FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Self, ShardError> {
        let syntax = || ShardError::Syntax(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(syntax)?;
        let index: usize = i.trim().parse().map_err(|_| syntax())?;
        let count: usize = n.trim().parse().map_err(|_| syntax())?;
        if count == 0 || index >= count {
            return Err(ShardError::Range(
                s.to_string(),
                count.max(1),
                count.max(1) - 1,
            ));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("1/3".parse(), Ok(Shard { index: 1, count: 3 }));
        for bad in ["3/3", "a/b", "1", "0/0", "-1/3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        assert!(Shard { index: 1, count: 3 }.contains(4));
    }

    #[test]
    fn slurm_environment() {
        let env = |id: &'static str, min: Option<&'static str>| {
            move |k: &str| match k {
                "SLURM_ARRAY_TASK_ID" => Some(id.to_string()),
                "SLURM_ARRAY_TASK_COUNT" => Some("3".to_string()),
                "SLURM_ARRAY_TASK_MIN" => min.map(String::from),
                _ => None,
            }
        };
        assert_eq!(
            Shard::resolve(None, env("2", None)),
            Ok(Shard { index: 2, count: 3 })
        );
        assert_eq!(
            Shard::resolve(None, env("3", Some("1"))),
            Ok(Shard { index: 2, count: 3 })
        );
        assert!(Shard::resolve(None, env("3", None)).is_err());
        assert_eq!(Shard::resolve(None, |_| None), Ok(Shard::ALL));
    }
}
